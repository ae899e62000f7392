package accessproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-edge/portico/internal/accessproxy/proxyproto"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// dialUpstream connects to an inside host:port and writes a PROXY header
// for client when version is 1 or 2.
func (s *Server) dialUpstream(ctx context.Context, st *state, addr string, version int, client net.Conn) (net.Conn, error) {
	d := net.Dialer{Timeout: st.cfg.Timeouts.Dial}
	up, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if version != 0 {
		src := addrPortOf(client.RemoteAddr())
		dst := addrPortOf(client.LocalAddr())
		if pc, ok := client.(*peekConn); ok {
			src = pc.info.src
		}
		var hdr []byte
		if version == 1 {
			hdr = proxyproto.AppendV1(nil, src, dst)
		} else {
			hdr = proxyproto.AppendV2(nil, src, dst)
		}
		_ = up.SetWriteDeadline(time.Now().Add(st.cfg.Timeouts.Dial))
		if _, err := up.Write(hdr); err != nil {
			up.Close()
			return nil, err
		}
		_ = up.SetWriteDeadline(time.Time{})
	}
	return up, nil
}

// relayTo connects to upstream and copies both ways until both sides are
// done or the connection idles past the timeout.
func (s *Server) relayTo(ctx context.Context, st *state, route string, c net.Conn, upstream string, proxyVersion int) {
	up, err := s.dialUpstream(ctx, st, upstream, proxyVersion, c)
	if err != nil {
		s.m.rejected.WithLabelValues("upstream_dial").Inc()
		s.log.Warn("upstream unreachable", "route", route, "err", err)
		if pc, ok := c.(*peekConn); ok && pc.info.tls {
			writeAlert(pc.Conn, alertInternalError)
		}
		c.Close()
		return
	}
	relay(ctx, c, up, st.cfg.Timeouts.Idle)
}

// relay copies a↔b. Each direction half-closes its destination at EOF; the
// pair closes when both directions end, when ctx ends, or when neither
// direction moved a byte for idle.
func relay(ctx context.Context, a, b net.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	stop := context.AfterFunc(ctx, func() { a.Close(); b.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pipe(b, a, idle, &last) }()
	go func() { defer wg.Done(); pipe(a, b, idle, &last) }()
	wg.Wait()
	a.Close()
	b.Close()
}

func pipe(dst, src net.Conn, idle time.Duration, last *atomic.Int64) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		if idle > 0 {
			_ = src.SetReadDeadline(time.Now().Add(idle))
		}
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && idle > 0 &&
				time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other direction is busy: not idle
			}
			if err == io.EOF || errors.Is(err, io.EOF) {
				closeWrite(dst)
			} else {
				dst.Close()
				src.Close()
			}
			return
		}
	}
}

func closeWrite(c net.Conn) {
	type cw interface{ CloseWrite() error }
	if pc, ok := c.(*peekConn); ok {
		c = pc.Conn
	}
	if w, ok := c.(cw); ok {
		_ = w.CloseWrite()
		return
	}
	c.Close()
}

// ServeTCP runs TCP mapping number i (in Config.TCP order) on l until ctx
// ends or Close. It closes l.
func (s *Server) ServeTCP(ctx context.Context, i int, l net.Listener) error {
	return s.acceptLoop(ctx, l, func(c net.Conn) {
		st := s.state.Load()
		if i >= len(st.tcp) {
			c.Close()
			return
		}
		m := st.tcp[i]
		src := addrPortOf(c.RemoteAddr())
		pc := &peekConn{Conn: c}
		pc.info.src = src
		if st.isTrusted(src.Addr()) {
			_ = c.SetReadDeadline(time.Now().Add(st.cfg.Timeouts.Peek))
			h, err := pc.readProxyHeader()
			if err != nil {
				s.m.rejected.WithLabelValues("proxy_protocol").Inc()
				c.Close()
				return
			}
			_ = c.SetReadDeadline(time.Time{})
			if !h.Local {
				pc.info.src = h.Source
				pc.remote = net.TCPAddrFromAddrPort(h.Source)
			}
		}
		if !inPrefixes(m.allow, pc.info.src.Addr(), true) {
			s.m.rejected.WithLabelValues("acl").Inc()
			c.Close()
			return
		}
		if m.sem != nil {
			select {
			case m.sem <- struct{}{}:
				defer func() { <-m.sem }()
			default:
				s.m.rejected.WithLabelValues("conn_limit").Inc()
				c.Close()
				return
			}
		}
		s.m.active.Inc()
		defer s.m.active.Dec()
		s.m.routed.WithLabelValues(m.Name).Inc()
		up, err := s.dialUpstream(ctx, st, m.Upstream, m.SendProxyProtocol, pc)
		if err != nil {
			s.m.rejected.WithLabelValues("upstream_dial").Inc()
			s.log.Warn("upstream unreachable", "mapping", m.Name, "err", err)
			c.Close()
			return
		}
		relay(ctx, pc, up, m.IdleTimeout)
	})
}

var _ = netip.Addr{}
