//go:build linux

package udpbuf

import (
	"net"
	"testing"
)

func TestTune(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := Least(1 << 20)
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

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     int
		want   int
		wantOK bool
	}{
		{"default", 0, DefaultSize, true},
		{"kernel default", -1, -1, true},
		{"smallest", 4096, 4096, true},
		{"largest", 64 << 20, 64 << 20, true},
		{"too small", 4095, 4095, false},
		{"too large", 64<<20 + 1, 64<<20 + 1, false},
		{"negative", -2, -2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := Size(tc.in); got != tc.want || ok != tc.wantOK {
				t.Errorf("Size(%d) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
