package turn

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// slowDatagram is a peer's datagram for the engine.
type slowDatagram struct {
	data []byte
	from netip.AddrPort
}

// pollState is what a relay socket read by a poller keeps. pollWant is
// set (once) when the socket is to move to a poller: its UDP client's fast
// path is in place. The engine's goroutine reading the socket registers it
// with the poller itself, the next time it is about to wait for a datagram
// (so that never two goroutines read it), and waits on slow from then on;
// a relay socket that never receives costs the poller nothing.
type pollState struct {
	pollWant atomic.Pointer[relayPoller]
	pollOff  bool // the poller refused the socket (engine's goroutine only)
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
	if p != nil {
		c.pollWant.CompareAndSwap(nil, p)
	}
}

// handOver is called by the engine's goroutine with nothing buffered: it
// reports whether the socket is now read by a poller.
func (c *relayPacketConn) handOver() bool {
	p := c.pollWant.Load()
	if p == nil || c.pollOff {
		return false
	}
	if p.add(c) != nil {
		c.pollOff = true
		return false
	}
	return true
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
