package turn

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-edge/portico/internal/handoff"
)

// listenPacketConn wraps a UDP listener socket. It forwards ChannelData
// (RFC 8656 §12.5) of known channels itself, without allocating, and hands
// everything else to the engine; and it reads the LIFETIME of the server's
// Allocate/Refresh responses to keep each allocation's expiry.
type listenPacketConn struct {
	net.PacketConn
	udp   *net.UDPConn // nil: no fast path
	s     *Server
	local string

	mu    sync.RWMutex
	chans map[chanKey]fastChan
}

type chanKey struct {
	client netip.AddrPort
	number uint16
}

type fastChan struct {
	relay *relayPacketConn
	peer  netip.AddrPort
}

func newListenPacketConn(s *Server, pc net.PacketConn) *listenPacketConn {
	c := &listenPacketConn{PacketConn: pc, s: s, local: pc.LocalAddr().String(), chans: map[chanKey]fastChan{}}
	c.udp, _ = pc.(*net.UDPConn)
	return c
}

func mkChanKey(client netip.AddrPort, number uint16) chanKey {
	return chanKey{netip.AddrPortFrom(client.Addr().Unmap(), client.Port()), number}
}

func (c *listenPacketConn) addChannel(client netip.AddrPort, number uint16, relay *relayPacketConn, peer netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.chans[mkChanKey(client, number)] = fastChan{relay: relay, peer: peer}
}

func (c *listenPacketConn) removeChannel(client netip.AddrPort, number uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.chans, mkChanKey(client, number))
}

// ReadFrom returns the next datagram the engine must handle.
func (c *listenPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.udp == nil {
		return c.PacketConn.ReadFrom(p)
	}
	for {
		n, from, err := c.udp.ReadFromUDPAddrPort(p)
		if err != nil {
			return n, nil, err
		}
		if c.s.refused(from.Addr()) {
			continue
		}
		if n >= 4 && p[0]&0xC0 == 0x40 && c.forward(p[:n], from) {
			continue
		}
		return n, net.UDPAddrFromAddrPort(from), nil
	}
}

// forward relays ChannelData on a known channel, reporting whether it did.
func (c *listenPacketConn) forward(b []byte, from netip.AddrPort) bool {
	if len(b) < 4 {
		return false
	}
	number := uint16(b[0])<<8 | uint16(b[1])
	length := int(uint16(b[2])<<8 | uint16(b[3]))
	if length > len(b)-4 {
		return false // malformed: the engine counts and drops it
	}
	c.mu.RLock()
	ch, ok := c.chans[mkChanKey(from, number)]
	c.mu.RUnlock()
	if !ok {
		return false
	}
	n, err := ch.relay.UDPConn.WriteToUDPAddrPort(b[4:4+length], ch.peer)
	if err == nil {
		ch.relay.h.toPeer(n)
	}
	return true
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
	used   atomic.Bool // an Allocate or ConnectionBind succeeded on it
	idle   *time.Timer
}

// newStreamConn wraps c, or returns nil (and closes c) when
// listen.max_conns stream connections are already open.
func newStreamConn(s *Server, c net.Conn, kind string) *streamConn {
	if s.refusedConn(c) {
		_ = c.Close()
		return nil
	}
	if s.streams.Add(1) > int64(s.cfg.Listen.MaxConns) {
		s.streams.Add(-1)
		s.m.connsRefused.Inc()
		_ = c.Close()
		return nil
	}
	sc := &streamConn{Conn: c, s: s, key: fiveTupleKey(c.RemoteAddr(), c.LocalAddr()), closed: make(chan struct{})}
	s.reg.kinds.Store(sc.key, kind)
	if d := s.cfg.Listen.IdleTimeout; d > 0 {
		sc.idle = time.AfterFunc(d, func() {
			if !sc.used.Load() {
				s.m.connsIdle.Inc()
				_ = sc.Close()
			}
		})
	}
	return sc
}

func (c *streamConn) Write(p []byte) (int, error) {
	if len(p) >= stunHeaderLen && p[0] == 0x01 {
		// Allocate (0x0103) or ConnectionBind (0x010B) success: the
		// connection now carries an allocation or RFC 6062 data.
		if (p[1] == 0x03 || p[1] == 0x0B) && !c.used.Load() {
			c.used.Store(true)
			if c.idle != nil {
				c.idle.Stop()
			}
		}
		if lt, ok := responseLifetime(p); ok {
			c.s.noteLifetime(c.key, lt)
		}
	}
	return c.Conn.Write(p)
}

// Close closes the connection. Its error (a peer that went away before a
// TLS close_notify could be sent) is of no use to anyone and is dropped.
func (c *streamConn) Close() error {
	_ = c.Conn.Close()
	c.once.Do(func() {
		if c.idle != nil {
			c.idle.Stop()
		}
		c.s.reg.kinds.Delete(c.key)
		c.s.streams.Add(-1)
		close(c.closed)
	})
	return nil
}

// handOver gives a stream connection to the TURN engine's accept loop,
// which every stream connection reaches whatever its origin, so that RFC
// 6062 ConnectionBind finds its allocation whichever listener the data
// connection arrived on. It reports false if the engine does not take it
// within handoverTimeout or has stopped.
func handOver(ctx context.Context, l *handoff.Listener, c net.Conn) bool {
	ctx, cancel := context.WithTimeout(ctx, handoverTimeout)
	defer cancel()
	return l.Push(ctx, c) == nil
}
