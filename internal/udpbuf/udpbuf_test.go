//go:build linux

package udpbuf

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// rmemMax is net.core.rmem_max, what SO_RCVBUF may ask without privilege.
func rmemMax(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skip("no net.core.rmem_max:", err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func TestTune(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := 1 << 20
	if os.Geteuid() != 0 {
		want = min(want, rmemMax(t))
	}
	s := Tune(c, 1<<20)
	// The kernel reports twice the size it accounts.
	if s.Granted < want {
		t.Errorf("granted %d, want at least %d", s.Granted, want)
	}
	if n, ok := s.Drops(); !ok || n != 0 {
		t.Errorf("drops of a fresh socket: %d, %v; want 0, true", n, ok)
	}
}

// TestDropsCounted: a burst at a socket with the smallest buffer and no
// reader overflows it, and Drops shows the kernel's count.
func TestDropsCounted(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := Tune(c, 4096)
	w, err := net.Dial("udp", c.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := make([]byte, 1000)
	for range 200 {
		w.Write(b)
	}
	if n, ok := s.Drops(); !ok || n == 0 {
		t.Errorf("drops after 200 KB into a 4 KB buffer: %d, %v; want some", n, ok)
	}
	c.Close()
	if _, ok := s.Drops(); ok {
		t.Error("a closed socket still reports drops")
	}
}

func TestTuneOther(t *testing.T) {
	s := Tune(nil, 1<<20)
	if s.Granted != 0 {
		t.Errorf("granted %d for no UDP socket", s.Granted)
	}
	if _, ok := s.Drops(); ok {
		t.Error("drops reported for no UDP socket")
	}
	if _, ok := (*Socket)(nil).Drops(); ok {
		t.Error("drops reported by a nil Socket")
	}
}
