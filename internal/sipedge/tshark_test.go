package sipedge

import (
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/testpeer"
)

// capture is a tshark capture of the relay's media ports on lo.
type capture struct {
	*testpeer.Capture
	lo, hi int
}

// startCapture captures UDP on ports lo..hi (the relay's media ports) on lo.
func startCapture(t *testing.T, lo, hi int) *capture {
	t.Helper()
	return &capture{Capture: testpeer.StartCapture(t, fmt.Sprintf("udp portrange %d-%d", lo, hi), hi), lo: lo, hi: hi}
}

// rtpCounts stops the capture and counts RTP packets per "src>dst" IP pair.
func (c *capture) rtpCounts(t *testing.T) map[string]int {
	t.Helper()
	c.Stop(t)
	// tshark gives many UDP ports in the ranges tests draw from to other
	// protocols (27960 to Quake III, 32000 to UA/UDP ...), and a port's
	// dissector wins over the RTP heuristic: RTP from or to such a port
	// counted as none. The heuristic goes first here, and the relay's
	// ports decode as RTP whatever the heuristic makes of a packet.
	out, err := exec.Command("tshark", "-r", c.File, "-o", "rtp.heuristic_rtp:TRUE", "-o", "udp.try_heuristic_first:TRUE",
		"-d", fmt.Sprintf("udp.port==%d-%d,rtp", c.lo, c.hi),
		"-Y", "rtp", "-T", "fields", "-e", "ip.src", "-e", "ip.dst").Output()
	if err != nil {
		t.Fatalf("tshark read: %v", err)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] != testpeer.ProbeIP {
			counts[f[0]+">"+f[1]]++
		}
	}
	return counts
}

// TestCaptureCountsRTPOnRegisteredPorts: the relay's ports (and the peers'
// ephemeral ones) include UDP ports tshark gives to another protocol
// (27960 is Quake III's); RTP there must still be counted as RTP.
func TestCaptureCountsRTPOnRegisteredPorts(t *testing.T) {
	const lo, hi = 27950, 27969
	c := startCapture(t, lo, hi)
	src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(outsideIP), Port: 34962}) // PROFINET's
	if err != nil {
		src, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(outsideIP)})
		if err != nil {
			t.Fatal(err)
		}
	}
	defer src.Close()
	pkt := make([]byte, 12+160)
	pkt[0], pkt[1] = 0x80, 8 // RTP version 2, PCMA
	for i := range 20 {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i*160))
		binary.BigEndian.PutUint32(pkt[8:], 0x1234)
		if _, err := src.WriteToUDP(pkt, &net.UDPAddr{IP: net.ParseIP(extIP), Port: 27960}); err != nil {
			t.Fatal(err)
		}
	}
	if counts := c.rtpCounts(t); counts[outsideIP+">"+extIP] != 20 {
		t.Errorf("tshark counted %v RTP packets, want 20 %s>%s", counts, outsideIP, extIP)
	}
}
