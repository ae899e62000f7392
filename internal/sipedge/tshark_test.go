package sipedge

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// capture is a tshark capture on the loopback interface.
type capture struct {
	cmd  *exec.Cmd
	file string
	done chan struct{}
}

// startCapture captures UDP on ports lo..hi (the relay's media ports) on lo.
func startCapture(t *testing.T, lo, hi int) *capture {
	t.Helper()
	bin := testpeer.Require(t, "tshark")[0]
	c := &capture{file: filepath.Join(t.TempDir(), "media.pcap"), done: make(chan struct{})}
	c.cmd = exec.Command(bin, "-i", "lo", "-q", "-w", c.file, "-f", fmt.Sprintf("udp portrange %d-%d", lo, hi))
	var stderr bytes.Buffer
	var mu sync.Mutex
	c.cmd.Stderr = &lockedWriter{w: &stderr, mu: &mu}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ready := strings.Contains(stderr.String(), "Capturing on")
		mu.Unlock()
		if ready {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("tshark did not start: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
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
	time.Sleep(300 * time.Millisecond)
	c.stop()
	out, err := exec.Command("tshark", "-r", c.file, "-o", "rtp.heuristic_rtp:TRUE", "-Y", "rtp", "-T", "fields", "-e", "ip.src", "-e", "ip.dst").Output()
	if err != nil {
		t.Fatalf("tshark read: %v", err)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			counts[f[0]+">"+f[1]]++
		}
	}
	return counts
}
