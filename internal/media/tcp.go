package media

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// tcpStream relays one TCP media stream (BFCP, RFC 4145/RFC 8856): on each
// leg the relay either listens (passive) or connects (active); once both
// legs are connected, bytes are copied both ways.
type tcpStream struct {
	r      *Relay
	mu     sync.Mutex
	closed bool
	legs   [2]tcpLeg
	lastNs atomic.Int64
}

type tcpLeg struct {
	ln      *net.TCPListener
	conn    *net.TCPConn
	role    TCPRole
	remote  netip.AddrPort
	source  netip.Addr // signalling source (LatchNAT only)
	dialing bool
	bytes   atomic.Uint64
	reads   atomic.Uint64
	dropped atomic.Uint64
}

func (r *Relay) openTCP(s *session, st *stream) error {
	ts := &tcpStream{r: r}
	for leg := 0; leg < 2; leg++ {
		ls := &st.legs[leg]
		ls.iface = s.ifaces[leg]
		tl := &ts.legs[leg]
		tl.role = st.cfg.Role[leg]
		tl.remote = st.cfg.Remote[leg]
		tl.source = st.cfg.Source[leg].Unmap()
		port, err := ls.iface.pool.take(func(port int) error {
			if tl.role == TCPActive {
				return nil // RFC 4145: an active endpoint's port is not used
			}
			ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ls.iface.addr, uint16(port))))
			if err != nil {
				return err
			}
			tl.ln = ln
			return nil
		})
		if err != nil {
			ts.close()
			for l := 0; l < leg; l++ {
				st.legs[l].iface.pool.put(st.legs[l].port)
				st.legs[l].port = 0
			}
			return err
		}
		ls.port = port
	}
	st.tcp = ts
	for leg := 0; leg < 2; leg++ {
		if ts.legs[leg].ln != nil {
			r.wg.Add(1)
			go ts.accept(leg)
		}
	}
	ts.mu.Lock()
	ts.dialLocked()
	ts.mu.Unlock()
	r.m.streams.Inc()
	return nil
}

func (r *Relay) updateTCP(st *stream) {
	ts := st.tcp
	if ts == nil {
		return
	}
	ts.mu.Lock()
	for leg := range ts.legs {
		if st.cfg.Remote[leg].IsValid() && ts.legs[leg].conn == nil {
			ts.legs[leg].remote = st.cfg.Remote[leg]
		}
		ts.legs[leg].source = st.cfg.Source[leg].Unmap()
	}
	ts.dialLocked()
	ts.mu.Unlock()
}

// dialLocked starts connecting active legs whose remote is known.
func (ts *tcpStream) dialLocked() {
	for leg := range ts.legs {
		tl := &ts.legs[leg]
		if ts.closed || tl.role != TCPActive || tl.dialing || tl.conn != nil || !tl.remote.IsValid() {
			continue
		}
		tl.dialing = true
		ts.r.wg.Add(1)
		go func(leg int, to netip.AddrPort) {
			defer ts.r.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", to.String())
			if err != nil {
				ts.r.log.Debug("tcp media dial failed", "to", to, "err", err)
				ts.mu.Lock()
				ts.legs[leg].dialing = false
				ts.mu.Unlock()
				return
			}
			ts.connected(leg, c.(*net.TCPConn))
		}(leg, tl.remote)
	}
}

func (ts *tcpStream) accept(leg int) {
	defer ts.r.wg.Done()
	tl := &ts.legs[leg]
	for {
		c, err := tl.ln.AcceptTCP()
		if err != nil {
			return
		}
		src := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		ts.mu.Lock()
		want, source := tl.remote, tl.source
		ts.mu.Unlock()
		// The latching rule's first packet (see endpoint.admit): the
		// signalled IP or, with NAT latching, the signalling source.
		a := src.Addr().Unmap()
		known := want.IsValid() && want.Addr().Unmap() == a || ts.r.cfg.Latching == LatchNAT && source == a
		if !known {
			tl.dropped.Add(1)
			ts.r.m.strangers.Inc()
			c.Close()
			continue
		}
		if ts.connected(leg, c) {
			tl.ln.Close() // one connection per leg
			return
		}
	}
}

// connected installs a leg's connection; when both legs have one it starts
// copying. It reports whether c was kept.
func (ts *tcpStream) connected(leg int, c *net.TCPConn) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed || ts.legs[leg].conn != nil {
		c.Close()
		return false
	}
	ts.legs[leg].conn = c
	ts.lastNs.Store(time.Now().UnixNano())
	if ts.legs[0].conn != nil && ts.legs[1].conn != nil {
		ts.r.wg.Add(2)
		go ts.copy(0, 1)
		go ts.copy(1, 0)
	}
	return true
}

func (ts *tcpStream) copy(from, to int) {
	defer ts.r.wg.Done()
	src, dst := ts.legs[from].conn, ts.legs[to].conn
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			ts.legs[from].bytes.Add(uint64(n))
			ts.legs[from].reads.Add(1)
			ts.lastNs.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				dst.CloseWrite()
			}
			return
		}
	}
}

func (ts *tcpStream) close() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.closed = true
	for leg := range ts.legs {
		tl := &ts.legs[leg]
		if tl.ln != nil {
			tl.ln.Close()
		}
		if tl.conn != nil {
			tl.conn.Close()
		}
	}
}

func (ts *tcpStream) last() time.Time { return time.Unix(0, ts.lastNs.Load()) }

func (ts *tcpStream) legStats(leg int, l *LegStats) {
	tl := &ts.legs[leg]
	l.Packets = tl.reads.Load()
	l.Bytes = tl.bytes.Load()
	l.Forwarded = l.Packets
	l.Dropped = tl.dropped.Load()
	ts.mu.Lock()
	if tl.conn != nil {
		l.Peer = tl.conn.RemoteAddr().(*net.TCPAddr).AddrPort()
		l.Latched = true
	} else {
		l.Peer = tl.remote
	}
	ts.mu.Unlock()
	if t := ts.lastNs.Load(); t > 0 {
		l.LastPacket = time.Unix(0, t)
	}
}
