package sipedge

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// TestICMPConn: a datagram to a closed port is reported by its
// destination, and the socket goes on reading and writing: neither the
// pending error nor the queued ICMP message fails a later read or write.
func TestICMPConn(t *testing.T) {
	raw := listenUDP(t, "127.0.0.1")
	var mu sync.Mutex
	var reported []netip.AddrPort
	pc := newICMPConn(raw, func(ap netip.AddrPort) {
		mu.Lock()
		reported = append(reported, ap)
		mu.Unlock()
	})
	if pc == nil {
		t.Fatal("IP_RECVERR refused on a UDP socket")
	}
	defer pc.Close()
	closed := listenUDP(t, "127.0.0.1")
	dead := closed.LocalAddr().(*net.UDPAddr)
	closed.Close()
	peer := listenUDP(t, "127.0.0.1")
	defer peer.Close()

	// Write path: the kernel fails the send after an ICMP error once,
	// without sending; the wrapper reports the error and sends again.
	if _, err := pc.WriteTo([]byte("x"), dead); err != nil {
		t.Fatalf("write to the closed port: %v", err)
	}
	if _, err := pc.WriteTo([]byte("ping"), peer.LocalAddr()); err != nil {
		t.Fatalf("write after the ICMP error: %v", err)
	}
	buf := make([]byte, 64)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	mu.Lock()
	if len(reported) == 0 {
		t.Error("the ICMP error met by a write was not reported")
	}
	mu.Unlock()

	// Read path: a read blocked when the error comes reports it and reads
	// on.
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	before := func() int { mu.Lock(); defer mu.Unlock(); return len(reported) }()
	if _, err := pc.WriteTo([]byte("x"), dead); err != nil {
		t.Fatalf("write to the closed port: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for func() int { mu.Lock(); defer mu.Unlock(); return len(reported) }() == before {
		if time.Now().After(deadline) {
			t.Fatal("the ICMP error met by a read was not reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
	peer.WriteTo([]byte("pong"), from)
	select {
	case s := <-got:
		if s != "pong" {
			t.Fatalf("read %s, want pong", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read never returned")
	}
	mu.Lock()
	defer mu.Unlock()
	want := netip.MustParseAddrPort(dead.String())
	for _, ap := range reported {
		if ap != want {
			t.Errorf("reported %v, want only %v", ap, want)
		}
	}
}
