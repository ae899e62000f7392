package turn

import (
	"net"
	"sync"
	"time"
)

// listenPacketConn wraps a UDP listener socket so that the LIFETIME of the
// server's Allocate/Refresh responses updates the allocation's expiry.
type listenPacketConn struct {
	net.PacketConn
	s     *Server
	local string
}

func (c *listenPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if len(p) >= stunHeaderLen && p[0] == 0x01 {
		if lt, ok := responseLifetime(p); ok && addr != nil {
			c.s.noteLifetime(addr.Network()+"|"+addr.String()+"|"+c.local, lt)
		}
	}
	return c.PacketConn.WriteTo(p, addr)
}

// streamConn wraps a client stream connection (TCP, TLS, DTLS, or one handed
// over by HandleConn) on its way to the TURN engine.
type streamConn struct {
	net.Conn
	s      *Server
	key    string
	once   sync.Once
	closed chan struct{}
}

func newStreamConn(s *Server, c net.Conn, kind string) *streamConn {
	sc := &streamConn{Conn: c, s: s, key: fiveTupleKey(c.RemoteAddr(), c.LocalAddr()), closed: make(chan struct{})}
	s.reg.kinds.Store(sc.key, kind)
	return sc
}

func (c *streamConn) Write(p []byte) (int, error) {
	if len(p) >= stunHeaderLen && p[0] == 0x01 {
		if lt, ok := responseLifetime(p); ok {
			c.s.noteLifetime(c.key, lt)
		}
	}
	return c.Conn.Write(p)
}

func (c *streamConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.reg.kinds.Delete(c.key)
		close(c.closed)
	})
	return err
}

// chanListener is the net.Listener the TURN engine accepts stream
// connections from; every stream connection, whatever its origin, reaches
// it, so RFC 6062 ConnectionBind finds its allocation whichever listener the
// data connection arrived on.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func newChanListener() *chanListener {
	return &chanListener{
		ch:   make(chan net.Conn),
		done: make(chan struct{}),
		addr: &net.TCPAddr{IP: net.IPv4zero},
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// push hands c to the engine, or reports false once the listener is closed.
func (l *chanListener) push(c net.Conn, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	case <-t.C:
		return false
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
