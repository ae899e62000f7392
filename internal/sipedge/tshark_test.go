package sipedge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// capture is a tshark capture on the loopback interface.
type capture struct {
	cmd    *exec.Cmd
	file   string
	done   chan struct{}
	lo, hi int
	mu     sync.Mutex
	seen   map[string]bool // source ports of the probes captured
	more   chan struct{}   // a probe was captured
}

// captureIP sends the capture's probes: an address no test uses; its
// datagrams are left out of the counts.
const captureIP = "127.0.0.99"

// startCapture captures UDP on ports lo..hi (the relay's media ports) on lo.
// It returns once the capture is live: tshark's "Capturing on" comes
// before dumpcap is reading the interface, so a probe datagram is sent
// into the range until tshark shows it captured.
func startCapture(t *testing.T, lo, hi int) *capture {
	t.Helper()
	bin := testpeer.Require(t, "tshark")[0]
	c := &capture{file: filepath.Join(t.TempDir(), "media.pcap"), done: make(chan struct{}), lo: lo, hi: hi,
		seen: map[string]bool{}, more: make(chan struct{}, 1)}
	// -P -l: a line per packet captured (its source), as it is written.
	c.cmd = exec.Command(bin, "-i", "lo", "-l", "-P", "-w", c.file, "-f", fmt.Sprintf("udp portrange %d-%d", lo, hi),
		"-T", "fields", "-e", "ip.src", "-e", "udp.srcport")
	var stderr bytes.Buffer
	c.cmd.Stderr = &lockedWriter{w: &stderr, mu: &sync.Mutex{}}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if ip, port, ok := strings.Cut(sc.Text(), "\t"); ok && ip == captureIP {
				c.mu.Lock()
				c.seen[port] = true
				c.mu.Unlock()
				select {
				case c.more <- struct{}{}:
				default:
				}
			}
		}
	}()
	go func() { <-lines; c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.stop)
	if !c.sync() {
		t.Fatalf("tshark never captured a probe: %s", stderr.String())
	}
	return c
}

// sync sends probes into the captured range, from a port of its own,
// until tshark shows one: every datagram sent on lo before that probe is
// then in the capture file.
func (c *capture) sync() bool {
	probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(captureIP)})
	if err != nil {
		return false
	}
	defer probe.Close()
	port := strconv.Itoa(probe.LocalAddr().(*net.UDPAddr).Port)
	dst := &net.UDPAddr{IP: net.ParseIP(captureIP), Port: c.hi}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := probe.WriteToUDP([]byte("capture probe"), dst); err != nil {
			return false
		}
		select {
		case <-c.more:
			c.mu.Lock()
			ok := c.seen[port]
			c.mu.Unlock()
			if ok {
				return true
			}
		case <-c.done:
			return false
		case <-deadline:
			return false
		case <-tick.C:
		}
	}
}

func (c *capture) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// rtpCounts stops the capture and counts RTP packets per "src>dst" IP pair.
func (c *capture) rtpCounts(t *testing.T) map[string]int {
	t.Helper()
	if !c.sync() {
		t.Fatal("tshark never captured the closing probe")
	}
	c.stop()
	// tshark gives many UDP ports in the ranges tests draw from to other
	// protocols (27960 to Quake III, 32000 to UA/UDP ...), and a port's
	// dissector wins over the RTP heuristic: RTP from or to such a port
	// counted as none. The heuristic goes first here, and the relay's
	// ports decode as RTP whatever the heuristic makes of a packet.
	out, err := exec.Command("tshark", "-r", c.file, "-o", "rtp.heuristic_rtp:TRUE", "-o", "udp.try_heuristic_first:TRUE",
		"-d", fmt.Sprintf("udp.port==%d-%d,rtp", c.lo, c.hi),
		"-Y", "rtp", "-T", "fields", "-e", "ip.src", "-e", "ip.dst").Output()
	if err != nil {
		t.Fatalf("tshark read: %v", err)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] != captureIP {
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
