package turn

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-edge/portico/internal/batchio"
	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/handoff"
)

// listenPacketConn wraps a UDP listener socket. It reads the socket in
// batches (recvmmsg) and relays ChannelData (RFC 8656 §12.5) of known
// channels and Send indications (§11.4) of known allocations to peers with
// a permission itself, without locks or allocations (see fastpath.go),
// screens requests (Server.screen) and hands everything else to the
// engine; on the way out it binds nonces to the client's address and reads
// the LIFETIME of the server's Allocate/Refresh responses to keep each
// allocation's expiry.
type listenPacketConn struct {
	net.PacketConn
	udp   *net.UDPConn // nil: no fast path
	s     *Server
	local string
	ready <-chan struct{} // closed when the engine may read

	in batchReader // owned by the engine's single reader

	chans  shardedCOW[chanKey, fastChan]
	allocs shardedCOW[netip.AddrPort, *relayPacketConn] // UDP clients' relays
	// standby holds the clients of standby copies (standby.go), whose
	// Refresh, CreatePermission and ChannelBind requests are answered here
	// instead of by the engine.
	standby cow[netip.AddrPort, *standbyAlloc]
}

type chanKey struct {
	client netip.AddrPort
	number uint16
}

type fastChan struct {
	relay *relayPacketConn
	peer  netip.AddrPort
}

func newListenPacketConn(s *Server, pc net.PacketConn, ready <-chan struct{}) *listenPacketConn {
	c := &listenPacketConn{PacketConn: pc, s: s, local: pc.LocalAddr().String(), ready: ready}
	if u, ok := pc.(*net.UDPConn); ok {
		if in, err := batchio.NewConn(u); err == nil {
			c.udp, c.in = u, batchReader{in: in, size: listenBatch}
		}
	}
	return c
}

func mkChanKey(client netip.AddrPort, number uint16) chanKey {
	return chanKey{unmapAP(client), number}
}

func (c *listenPacketConn) addChannel(client netip.AddrPort, number uint16, relay *relayPacketConn, peer netip.AddrPort) {
	c.chans.shard(client.Port()).store(mkChanKey(client, number), fastChan{relay: relay, peer: peer})
}

func (c *listenPacketConn) removeChannel(client netip.AddrPort, number uint16) {
	c.chans.shard(client.Port()).deleteIf(mkChanKey(client, number), func(fastChan) bool { return true })
}

func (c *listenPacketConn) addAlloc(client netip.AddrPort, relay *relayPacketConn) {
	c.allocs.shard(client.Port()).store(unmapAP(client), relay)
}

func (c *listenPacketConn) removeAlloc(client netip.AddrPort, relay *relayPacketConn) {
	c.allocs.shard(client.Port()).deleteIf(unmapAP(client), func(r *relayPacketConn) bool { return r == relay })
}

// ReadFrom returns the next datagram the engine must handle.
func (c *listenPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.ready != nil {
		<-c.ready
	}
	for {
		var (
			n    int
			from net.Addr
		)
		if c.udp == nil {
			var err error
			n, from, err = c.PacketConn.ReadFrom(p)
			if err != nil {
				return n, nil, err
			}
			if c.s.refused(clientIP(from)) {
				continue
			}
		} else {
			m, err := c.in.read()
			if err != nil {
				return 0, nil, err
			}
			b := m.Data()
			if c.s.refused(m.Addr.Addr()) {
				continue // blocked or denied (guardhook.go): not even ChannelData
			}
			if len(b) >= 4 && b[0]&0xC0 == 0x40 && c.forward(b, m.Addr) {
				continue
			}
			if len(b) >= stunHeaderLen && b[0] == 0x00 && b[1] == 0x16 && c.send(b, m.Addr) {
				continue
			}
			if len(b) >= stunHeaderLen && b[0] == 0x00 && (b[1] == 0x04 || b[1] == 0x08 || b[1] == 0x09) {
				// Refresh, CreatePermission, ChannelBind of a standby copy.
				if sb, ok := c.standby.load()[m.Addr]; ok && sb.request(b, m.Addr, c.PacketConn) {
					continue
				}
				if b[1] == 0x04 && c.release(b, m.Addr) {
					continue
				}
			}
			n = copy(p, b)
			from = net.UDPAddrFromAddrPort(m.Addr)
		}
		if !c.s.screen(p[:n], from, c) {
			continue
		}
		return n, from, nil
	}
}

// reply sends a message the screen answered itself.
func (c *listenPacketConn) reply(b []byte, to net.Addr) { _, _ = c.PacketConn.WriteTo(b, to) }

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
	ch, ok := c.chans.shard(from.Port()).load()[chanKey{from, number}]
	if !ok {
		return false
	}
	ch.relay.sendToPeer(b[4:4+length], ch.peer)
	return true
}

// send relays a Send indication from a client with a UDP allocation to a
// peer with a permission, reporting whether it did; the engine handles
// (and refuses) the others.
func (c *listenPacketConn) send(b []byte, from netip.AddrPort) bool {
	relay, ok := c.allocs.shard(from.Port()).load()[from]
	if !ok {
		return false
	}
	peer, data, ok := parseSendIndication(b)
	if !ok {
		return false
	}
	if _, ok := relay.perms.load()[peer.Addr()]; !ok {
		return false
	}
	relay.sendToPeer(data, peer)
	return true
}

func (c *listenPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.s.muffled(p, addr) {
		return len(p), nil
	}
	c.s.bindNonce(p, addr)
	if len(p) >= stunHeaderLen && p[0] == 0x01 {
		if lt, ok := responseLifetime(p); ok && addr != nil {
			c.s.noteLifetime(addr.Network()+"|"+addr.String()+"|"+c.local, lt)
		}
	}
	return c.PacketConn.WriteTo(p, addr)
}

// streamConn wraps a client stream connection (TCP, TLS, DTLS, or one handed
// over by HandleConn) on its way to the TURN engine. Like listenPacketConn
// it screens requests and binds nonces; on a byte stream it frames STUN
// messages (RFC 8656 §3.1) to do so, passing ChannelData through unread,
// until an RFC 6062 ConnectionBind turns the connection into raw data.
type streamConn struct {
	net.Conn
	s      *Server
	key    string
	once   sync.Once
	closed chan struct{}
	used   atomic.Bool // an Allocate or ConnectionBind succeeded on it
	idle   *time.Timer
	// lim is the listener the connection came from (nil: handed over),
	// told when the first STUN message arrives (its handshake timeout).
	lim         *connlimit.Listener
	established bool

	// Read side, owned by the engine's single reader.
	dgram bool          // DTLS: one message per Read
	raw   atomic.Bool   // framing stopped (ConnectionBind succeeded, or not STUN)
	br    *bufio.Reader // framing reads, so that small frames share a read
	hdr   [4]byte
	pend  []byte // screened bytes the engine has not read yet
	pass  int    // bytes of the current ChannelData still to pass unread
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
	sc := &streamConn{Conn: c, s: s, key: fiveTupleKey(c.RemoteAddr(), c.LocalAddr()), closed: make(chan struct{}), dgram: kind == "dtls"}
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

// Read returns the client's bytes to the engine, one STUN message or a
// piece of ChannelData at a time, having screened every request.
func (c *streamConn) Read(p []byte) (int, error) {
	for {
		if len(c.pend) > 0 {
			n := copy(p, c.pend)
			c.pend = c.pend[n:]
			return n, nil
		}
		if c.raw.Load() {
			if c.br != nil && c.br.Buffered() > 0 {
				return c.br.Read(p)
			}
			return c.Conn.Read(p)
		}
		if c.dgram {
			n, err := c.Conn.Read(p)
			if n > 0 && !c.s.screen(p[:n], c.RemoteAddr(), c) {
				continue
			}
			return n, err
		}
		if c.br == nil {
			c.br = bufio.NewReaderSize(c.Conn, streamReadBuffer)
		}
		if c.pass > 0 {
			n, err := c.br.Read(p[:min(len(p), c.pass)])
			c.pass -= n
			return n, err
		}
		if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
			return 0, err
		}
		switch c.hdr[0] >> 6 {
		case 0: // STUN
			msg := make([]byte, stunHeaderLen+int(binary.BigEndian.Uint16(c.hdr[2:4])))
			copy(msg, c.hdr[:])
			if _, err := io.ReadFull(c.br, msg[4:]); err != nil {
				return 0, err
			}
			if !c.established && c.lim != nil {
				c.established = true
				c.lim.Established(c.RemoteAddr().String())
			}
			if c.s.screen(msg, c.RemoteAddr(), c) {
				c.pend = msg
			}
		case 1: // ChannelData, padded to 4 bytes on streams
			c.pend = c.hdr[:]
			c.pass = (int(binary.BigEndian.Uint16(c.hdr[2:4])) + 3) &^ 3
		default: // not TURN: the engine drops the connection
			c.raw.Store(true)
			c.pend = c.hdr[:]
		}
	}
}

// streamReadBuffer is the read buffer of a framed stream connection: a
// few ChannelData frames of audio per read.
const streamReadBuffer = 2048

// reply sends a message the screen answered itself.
func (c *streamConn) reply(b []byte, _ net.Addr) { _, _ = c.Conn.Write(b) }

func (c *streamConn) Write(p []byte) (int, error) {
	if c.s.muffled(p, c.RemoteAddr()) {
		return len(p), nil
	}
	c.s.bindNonce(p, c.RemoteAddr())
	if len(p) >= stunHeaderLen && p[0] == 0x01 {
		if p[1] == 0x0B {
			// ConnectionBind success: the rest of the stream is the
			// peer's data, no longer TURN framing.
			c.raw.Store(true)
		}
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
