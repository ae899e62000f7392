//go:build linux

package callsig

import (
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestInsideLegDefersPortChoice: Portico's connection toward the inside
// binds its address with IP_BIND_ADDRESS_NO_PORT, so the kernel picks the
// source port at connect time by the whole 4-tuple. Bound without it, every
// dial searched the ephemeral range for a port free on that address alone
// (TIME_WAIT included): at a sustained 1,000 calls/s that search took 88 %
// of Portico's CPU in the call-setup benchmark and calls timed out.
func TestInsideLegDefersPortChoice(t *testing.T) {
	p := startPortico(t, Config{})
	ln := routeTo(t, p)
	placeCall(t, p.outAddr, ln, newCallID())
	var conn net.Conn
	p.srv.mu.Lock()
	for c := range p.srv.calls {
		conn = c.legs[Inside].conn
	}
	p.srv.mu.Unlock()
	if conn == nil {
		t.Fatal("no call")
	}
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT) })
	if gerr != nil || v != 1 {
		t.Errorf("IP_BIND_ADDRESS_NO_PORT = %d (%v), want 1", v, gerr)
	}
}
