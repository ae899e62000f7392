package turn

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// slowDatagram is a peer's datagram for the engine.
type slowDatagram struct {
	data []byte
	from netip.AddrPort
}

// pollState is what a relay socket read by a poller keeps. pollWant is
// set (once) when the socket is to move to a poller: its UDP client's fast
// path is in place. The engine's goroutine, kicked out of its read by a
// deadline in the past, then registers the socket itself (so that never
// two goroutines read it) and waits on slow from then on.
type pollState struct {
	pollWant atomic.Pointer[relayPoller]
	poller   atomic.Pointer[relayPoller]
	pollID   uint32
	rc       syscall.RawConn
	pollRead func(fd uintptr) bool
	pollN    int
	pollErr  error
	slow     chan slowDatagram
	gone     chan struct{} // closed by Close
	goneOnce sync.Once
}

// usePoller asks the engine's goroutine reading c to hand the socket to p.
func (c *relayPacketConn) usePoller(p *relayPoller) {
	if p != nil && c.pollWant.CompareAndSwap(nil, p) {
		_ = c.UDPConn.SetReadDeadline(time.Unix(1, 0))
	}
}

// handOverRead is called by the engine's goroutine when its read failed
// with err: it reports whether the socket is now read by a poller (after a
// deadline set by usePoller), and whether err was that deadline.
func (c *relayPacketConn) handOverRead(err error) (polled, kicked bool) {
	p := c.pollWant.Load()
	if p == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false, false
	}
	_ = c.UDPConn.SetReadDeadline(time.Time{})
	c.flush()
	return p.add(c) == nil, true
}

// readSlow is ReadFrom for a socket read by a poller: the engine gets the
// datagrams the data path did not relay.
func (c *relayPacketConn) readSlow(p []byte) (int, net.Addr, error) {
	select {
	case d := <-c.slow:
		return copy(p, d.data), net.UDPAddrFromAddrPort(d.from), nil
	case <-c.gone:
		return 0, nil, net.ErrClosed
	}
}
