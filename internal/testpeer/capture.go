package testpeer

import (
	"bufio"
	"bytes"
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
)

// ProbeIP is the source of a Capture's probe datagrams: an address no test
// gives a peer, so counts can leave its packets out.
const ProbeIP = "127.0.0.99"

// Capture is a tshark capture on the loopback interface into File.
//
// tshark reports "Capturing on" before dumpcap reads the interface (on a
// loaded machine, packets sent in the next second or so were missing), and
// a capture stopped right after the last packet was sent may not have
// written it. So a Capture sends a probe datagram into what it captures and
// waits to see it: once when it starts, and again in Stop.
type Capture struct {
	File string // the pcap file, complete once Stop returned

	cmd   *exec.Cmd
	done  chan struct{}
	probe *net.UDPAddr
	errs  *bytes.Buffer
	emu   *sync.Mutex

	mu   sync.Mutex
	seen map[string]bool // source ports of the probes captured
	more chan struct{}   // a probe was captured
}

// StartCapture starts tshark on lo with the capture filter filter and
// returns once it is live. probePort is a UDP port the filter admits; the
// probes go to ProbeIP on that port. The capture is stopped at cleanup.
func StartCapture(t testing.TB, filter string, probePort int) *Capture {
	t.Helper()
	bin := Require(t, "tshark")[0]
	c := &Capture{File: filepath.Join(t.TempDir(), "capture.pcap"), done: make(chan struct{}),
		probe: &net.UDPAddr{IP: net.ParseIP(ProbeIP), Port: probePort},
		errs:  &bytes.Buffer{}, emu: &sync.Mutex{}, seen: map[string]bool{}, more: make(chan struct{}, 1)}
	// -P -l: a line per packet captured (its source), as it is written.
	c.cmd = exec.Command(bin, "-i", "lo", "-l", "-P", "-w", c.File, "-f", filter,
		"-T", "fields", "-e", "ip.src", "-e", "udp.srcport")
	c.cmd.Stderr = lockedWriter{c.errs, c.emu}
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
			if ip, port, ok := strings.Cut(sc.Text(), "\t"); ok && ip == ProbeIP {
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
	t.Cleanup(c.kill)
	if err := c.sync(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Stop waits until everything sent on lo so far is in File, then stops
// tshark.
func (c *Capture) Stop(t testing.TB) {
	t.Helper()
	if err := c.sync(); err != nil {
		t.Fatal(err)
	}
	c.kill()
}

// sync sends probes, from a port of its own, until tshark shows one: lo
// delivers in order, so every datagram sent before is then in File.
func (c *Capture) sync() error {
	src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ProbeIP)})
	if err != nil {
		return fmt.Errorf("capture probe: %w", err)
	}
	defer src.Close()
	port := strconv.Itoa(src.LocalAddr().(*net.UDPAddr).Port)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := src.WriteToUDP([]byte("capture probe"), c.probe); err != nil {
			return fmt.Errorf("capture probe: %w", err)
		}
		select {
		case <-c.more:
			c.mu.Lock()
			ok := c.seen[port]
			c.mu.Unlock()
			if ok {
				return nil
			}
		case <-c.done:
			return fmt.Errorf("tshark ended: %s", c.stderr())
		case <-deadline:
			return fmt.Errorf("tshark never captured a probe: %s", c.stderr())
		case <-tick.C:
		}
	}
}

func (c *Capture) stderr() string {
	c.emu.Lock()
	defer c.emu.Unlock()
	return c.errs.String()
}

// kill stops tshark (it writes out the file on SIGINT) and waits for it.
func (c *Capture) kill() {
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

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
