//go:build linux

package batchio

import (
	"errors"
	"net"
	"testing"
)

// TestEpollSet: a socket with a datagram is reported under its id, again
// at the next Wait while it is not read (level-triggered), and no more
// once read; Stop is reported as EpollStopID; a closed set takes no socket.
func TestEpollSet(t *testing.T) {
	s, err := NewEpollSet(8)
	if err != nil {
		t.Fatal(err)
	}
	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rc, err := a.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(rc, EpollStopID); err == nil {
		t.Fatal("id 0 accepted")
	}
	if err := s.Add(rc, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteToUDP([]byte("x"), a.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		ev, err := s.Wait()
		if err != nil || len(ev) != 1 || ev[0].Fd != 7 {
			t.Fatalf("wait %d: %v, %v", round, ev, err)
		}
	}
	b := NewBatch(4)
	var fd int
	_ = rc.Control(func(f uintptr) { fd = int(f) })
	if n, err := b.RecvFD(fd, 0); n != 1 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	s.Stop()
	ev, err := s.Wait()
	if err != nil || len(ev) != 1 || ev[0].Fd != EpollStopID {
		t.Fatalf("after Stop and the read: %v, %v", ev, err)
	}
	s.Close()
	if err := s.Add(rc, 8); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	s.Stop() // no effect on a closed set
}
