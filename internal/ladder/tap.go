package ladder

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Observer takes the SIP messages a wrapped socket carries; *Store is one.
type Observer interface {
	Observe(p Packet, msg []byte)
}

// addrPort converts a socket address (IPv4-mapped IPv6 as IPv4); the
// zero AddrPort when it is none.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	case nil:
		return ap
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// WrapPacketConn returns pc with every datagram it reads or writes
// handed to o as one message of interface iface.
func WrapPacketConn(pc net.PacketConn, o Observer, iface string) net.PacketConn {
	return &packetTap{PacketConn: pc, o: o, iface: iface, local: addrPort(pc.LocalAddr())}
}

type packetTap struct {
	net.PacketConn
	o     Observer
	iface string
	local netip.AddrPort
}

func (p *packetTap) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := p.PacketConn.ReadFrom(b)
	if err == nil && n > 0 && looksSIP(b[:n]) {
		p.o.Observe(Packet{Interface: p.iface, Transport: "udp", Dir: In, Time: time.Now(), Local: p.local, Remote: addrPort(a)}, b[:n])
	}
	return n, a, err
}

func (p *packetTap) WriteTo(b []byte, a net.Addr) (int, error) {
	at := time.Now()
	n, err := p.PacketConn.WriteTo(b, a)
	if err == nil && looksSIP(b) {
		p.o.Observe(Packet{Interface: p.iface, Transport: "udp", Dir: Out, Time: at, Local: p.local, Remote: addrPort(a)}, b)
	}
	return n, err
}

// looksSIP is the cheap test that skips keepalives (CRLF, STUN) before
// anything is parsed.
func looksSIP(b []byte) bool {
	return len(b) > 8 && b[0] >= 'A' && b[0] <= 'Z'
}

// WrapListener returns l with every connection it accepts tapped: each
// SIP message read or written is handed to o. Transport ws and wss
// connections are read as WebSocket (WSFramer, from the upgrade request
// on); any other transport as plain SIP (Framer: tcp, or tls after the
// handshake).
func WrapListener(l net.Listener, o Observer, iface, transport string) net.Listener {
	return &listenerTap{Listener: l, o: o, iface: iface, transport: transport}
}

type listenerTap struct {
	net.Listener
	o                Observer
	iface, transport string
}

func (l *listenerTap) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return WrapConn(c, l.o, l.iface, l.transport), nil
}

// splitter frames a byte stream into SIP messages.
type splitter interface {
	Write(b []byte, emit func([]byte))
}

// WrapConn returns c with each SIP message read or written on it handed
// to o. Reads and writes are framed apart.
func WrapConn(c net.Conn, o Observer, iface, transport string) net.Conn {
	t := &connTap{Conn: c, o: o, iface: iface, transport: transport, local: addrPort(c.LocalAddr()), remote: addrPort(c.RemoteAddr())}
	if transport == "ws" || transport == "wss" {
		t.in, t.out = &WSFramer{}, &WSFramer{}
	} else {
		t.in, t.out = &Framer{}, &Framer{}
	}
	return t
}

// connTap frames each direction of a connection. Writes may come from
// several goroutines (the SIP stack writes each message with one Write
// from the transaction that sends it): wmu keeps the framer's order the
// wire's. rmu guards the read framer the same way.
type connTap struct {
	net.Conn
	o                Observer
	iface, transport string
	local, remote    netip.AddrPort
	rmu, wmu         sync.Mutex
	in, out          splitter
}

func (c *connTap) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	n, err := c.Conn.Read(b)
	if n > 0 {
		pk := Packet{Interface: c.iface, Transport: c.transport, Dir: In, Time: time.Now(), Local: c.local, Remote: c.remote}
		c.in.Write(b[:n], func(m []byte) { c.o.Observe(pk, m) })
	}
	return n, err
}

func (c *connTap) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	pk := Packet{Interface: c.iface, Transport: c.transport, Dir: Out, Time: time.Now(), Local: c.local, Remote: c.remote}
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.out.Write(b[:n], func(m []byte) { c.o.Observe(pk, m) })
	}
	return n, err
}

// maxFrame caps a message a Framer assembles; a longer one is dropped.
const maxFrame = 64 << 10

// Framer splits a SIP byte stream into messages by the blank line that
// ends the headers and the Content-Length (RFC 3261 section 18.3); CRLF
// keepalives between messages (RFC 5626 section 3.5.1) are skipped. Bytes
// that frame no message within maxFrame are dropped and counted.
type Framer struct {
	buf     []byte
	Dropped int // bytes discarded
}

// Write adds stream bytes and calls emit with each complete message.
// emit's argument is valid only during the call.
func (f *Framer) Write(b []byte, emit func([]byte)) {
	f.buf = append(f.buf, b...)
	for {
		// keepalives and stray line ends between messages
		i := 0
		for i < len(f.buf) && (f.buf[i] == '\r' || f.buf[i] == '\n') {
			i++
		}
		f.buf = f.buf[i:]
		if len(f.buf) == 0 {
			f.buf = nil
			return
		}
		end := bytes.Index(f.buf, []byte("\r\n\r\n"))
		if end < 0 {
			if len(f.buf) > maxFrame {
				f.Dropped += len(f.buf)
				f.buf = nil
			}
			return
		}
		head := f.buf[:end]
		n := 0
		if v := headerValue(head, "Content-Length", "l"); v != nil {
			var err error
			n, err = strconv.Atoi(string(v))
			if err != nil || n < 0 || n > maxFrame {
				// unframeable: the stream's parser refuses it too
				f.Dropped += len(f.buf)
				f.buf = nil
				return
			}
		}
		total := end + 4 + n
		if total > maxFrame {
			f.Dropped += len(f.buf)
			f.buf = nil
			return
		}
		if len(f.buf) < total {
			return
		}
		emit(f.buf[:total])
		f.buf = f.buf[total:]
	}
}
