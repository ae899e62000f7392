// Package handoff provides Listener, a net.Listener whose connections are
// pushed to it by another part of Portico rather than accepted from a
// socket: the access proxy's one port hands sorted connections to its own
// HTTP server, to the SIP edge (WSS) and to the TURN service this way, and
// each of those serves them with the accept loop it already has.
package handoff

import (
	"context"
	"net"
	"sync"
)

// Listener is a net.Listener fed by Push. The zero value is not usable;
// make one with New.
type Listener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

// New returns an open Listener whose Addr is addr (0.0.0.0:0 over TCP when
// addr is nil).
func New(addr net.Addr) *Listener {
	if addr == nil {
		addr = &net.TCPAddr{IP: net.IPv4zero}
	}
	return &Listener{ch: make(chan net.Conn), done: make(chan struct{}), addr: addr}
}

// Push gives c to the next Accept. It returns net.ErrClosed once the
// Listener is closed, or ctx's cause if ctx ends before anyone accepts; in
// both cases c is untouched and still the caller's to close.
func (l *Listener) Push(ctx context.Context, c net.Conn) error {
	select {
	case <-l.done: // closed wins over a ready Accept
		return net.ErrClosed
	default:
	}
	select {
	case l.ch <- c:
		return nil
	case <-l.done:
		return net.ErrClosed
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Accept waits for the next pushed connection; after Close it returns
// net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and refuses later pushes. Connections already accepted
// are not touched. It is safe to call more than once.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Closed is closed when Close is called: an accept loop fed by another
// source as well can tell its own shutdown from that source's errors.
func (l *Listener) Closed() <-chan struct{} { return l.done }

// Addr returns the address given to New.
func (l *Listener) Addr() net.Addr { return l.addr }
