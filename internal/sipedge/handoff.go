package sipedge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Handoff limits. The WebSocket upgrade request is read before the
// connection reaches sipgo's accept loop, which upgrades connections one at
// a time: a client that connects and stays silent would otherwise stall
// every other handed-off connection.
const (
	handoffUpgradeTimeout = 10 * time.Second
	handoffMaxUpgrade     = 8 << 10 // bytes of HTTP upgrade request
)

// WSHandoff takes over SIP-over-WebSocket connections whose TLS another
// service (the access proxy on TCP 443) has already terminated. They are
// outside connections: they are served by the external side's WSS transport,
// so a registration over one records transport "wss" and the client's
// address (c.RemoteAddr()), its flow token names that connection, and calls
// to the endpoint come back over it, exactly as through a wss listener.
//
// WSHandoff implements accessproxy.ConnHandler.
type WSHandoff struct{ s *Server }

// WSHandoff returns the handler for handed-off WSS connections. It fails
// when the edge has no external interface to serve them on.
func (s *Server) WSHandoff() (*WSHandoff, error) {
	for _, l := range s.cfg.Listeners {
		if l.Interface == External {
			return &WSHandoff{s: s}, nil
		}
	}
	return nil, fmt.Errorf("sipedge: wss handoff needs an %s listener", External)
}

// ALPNProtocols says WebSocket over TLS is negotiated as HTTP/1.1 (RFC 6455
// upgrade; WebSocket over HTTP/2, RFC 8441, is not served).
func (h *WSHandoff) ALPNProtocols() []string { return []string{"http/1.1"} }

// HandleConn reads c's WebSocket upgrade request, gives c to the SIP edge
// and returns when c is closed: by the endpoint, by the SIP edge (Close, a
// transport error), or because ctx ended. It closes c itself when the
// upgrade request does not arrive within 10s or the SIP edge is not serving
// within that time, so it never blocks for ever.
func (h *WSHandoff) HandleConn(ctx context.Context, c net.Conn) {
	s := h.s
	hc, err := h.admit(ctx, c)
	if err != nil {
		s.log.Debug("wss handoff refused", "from", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	if ap := addrPort(c.LocalAddr()); ap.IsValid() {
		s.ext.handoffPort.CompareAndSwap(0, int32(ap.Port()))
	}
	select {
	case <-hc.closed:
	case <-ctx.Done():
		hc.Close()
	case <-s.closed:
		hc.Close()
	}
}

// admit reads c's upgrade request and pushes c to the WSS accept loop, both
// within handoffUpgradeTimeout.
func (h *WSHandoff) admit(ctx context.Context, c net.Conn) (*handoffConn, error) {
	ctx, cancel := context.WithTimeout(ctx, handoffUpgradeTimeout)
	defer cancel()
	if err := c.SetReadDeadline(time.Now().Add(handoffUpgradeTimeout)); err != nil {
		return nil, err
	}
	// A deadline in the past wakes the read when ctx ends first; set after
	// the one above, so that it cannot be overwritten by it.
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	pre, err := readUpgrade(c)
	if !stop() {
		return nil, fmt.Errorf("%w: %w", ErrHandoffUpgrade, context.Cause(ctx))
	}
	if err != nil {
		return nil, err
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	hc := &handoffConn{Conn: c, pre: pre, closed: make(chan struct{})}
	// Close closes the handoff listener too, so a push cannot outlive the
	// SIP edge.
	if err := h.s.handoff.Push(ctx, hc); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("sipedge: handoff: sip edge not serving: %w", err)
	}
	return hc, nil
}

// readUpgrade reads c up to the end of an HTTP request head ("\r\n\r\n") and
// returns what it read, to be replayed to sipgo's upgrader.
func readUpgrade(c net.Conn) ([]byte, error) {
	buf := make([]byte, 0, 1024)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= handoffMaxUpgrade {
				return nil, ErrHandoffUpgrade
			}
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if bytes.Contains(buf, []byte("\r\n\r\n")) {
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrHandoffUpgrade, err)
		}
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// handoffConn is a handed-off connection on its way through sipgo: it
// replays the upgrade request HandleConn read and reports its closing.
type handoffConn struct {
	net.Conn
	pre    []byte // read only by sipgo's accept loop, then its reader
	once   sync.Once
	closed chan struct{}
}

func (c *handoffConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *handoffConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}
