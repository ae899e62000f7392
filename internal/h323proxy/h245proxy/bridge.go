package h245proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// BridgeConfig describes one separate H.245 connection across the edge:
// the endpoint on side Listen connects to Portico, and Portico connects
// to the other side's endpoint at Target.
type BridgeConfig struct {
	Session *Session
	// Listen is the side whose endpoint connects to the bridge.
	Listen Side
	// ListenAddr is the local address to listen on (port 0 picks one).
	ListenAddr netip.AddrPort
	// ListenPorts, when set, picks ListenAddr's port from its range, and
	// BackPorts BackAddr's (ErrPorts when every port is taken).
	ListenPorts, BackPorts *Ports
	// Target is the H.245 address the other side's endpoint announced.
	Target netip.AddrPort
	// Bind is the local address for the connection to Target (zero: any).
	Bind netip.Addr
	// Dial, when set, opens the connection to Target in place of a direct
	// one (Bind is then not used): through the tunnel's dial service
	// when Portico cannot reach the endpoint itself.
	Dial func(ctx context.Context, to netip.AddrPort) (net.Conn, error)
	// AllowFrom, when valid, is the only source IP accepted.
	AllowFrom netip.Addr
	// AcceptTimeout bounds the wait for the endpoint (default 30s) and
	// DialTimeout the connection to Target (default 10s).
	AcceptTimeout, DialTimeout time.Duration
	// IdleTimeout closes a bridge that carried nothing either way for
	// this long (0: never; TCP keep-alives still end half-open peers).
	IdleTimeout time.Duration
	// MaxFrame caps a TPKT payload (default DefaultMaxFrame).
	MaxFrame int
	// BackAddr, when valid, makes the bridge listen there too, on the
	// other side, instead of connecting to Target: the endpoint there
	// connects itself (an H.460.18 endpoint behind NAT, asked by a
	// Facility startH245 naming BackAddr). BackAllow, when valid, is the
	// only source IP accepted there.
	BackAddr  netip.AddrPort
	BackAllow netip.Addr
	// Hello, when set, is an H.245 PDU written first on the connection to
	// Target (a traversal client's H.460.18 genericIndication).
	Hello []byte
	// KeepAlive, when positive, sends an empty TPKT packet this often on
	// the connection of the Outside side (the NAT binding of an H.460.18
	// endpoint that connected, or of Portico toward a traversal server).
	KeepAlive time.Duration
	// OnMalformed is called (once) when a PDU does not decode; the bridge
	// then closes. Optional.
	OnMalformed func(from Side, err error)
	Logger      *slog.Logger
}

// Bridge carries one separate H.245 connection. Close is idempotent and
// waits for its goroutines.
type Bridge struct {
	cfg   BridgeConfig
	ln    net.Listener
	addr  netip.AddrPort
	back  net.Listener // BackAddr's listener, if any
	baddr netip.AddrPort

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

// StartBridge listens and starts serving; Addr is what to announce.
func StartBridge(cfg BridgeConfig) (*Bridge, error) {
	if cfg.AcceptTimeout <= 0 {
		cfg.AcceptTimeout = 30 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := listen(cfg.ListenPorts, cfg.ListenAddr)
	if err != nil {
		return nil, err
	}
	b := &Bridge{cfg: cfg, ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	if cfg.BackAddr.IsValid() {
		back, err := listen(cfg.BackPorts, cfg.BackAddr)
		if err != nil {
			ln.Close()
			return nil, err
		}
		b.back, b.baddr = back, back.Addr().(*net.TCPAddr).AddrPort()
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(1)
	go b.run()
	return b, nil
}

// listen binds at a on a port of ports, or at a itself without them.
func listen(ports *Ports, a netip.AddrPort) (*net.TCPListener, error) {
	if ports.Range().IsZero() {
		return net.ListenTCP("tcp", net.TCPAddrFromAddrPort(a))
	}
	return ports.Listen(a.Addr())
}

// Addr returns the bound listening address.
func (b *Bridge) Addr() netip.AddrPort { return b.addr }

// BackAddr returns the bound address of the BackAddr listener (invalid
// without one).
func (b *Bridge) BackAddr() netip.AddrPort { return b.baddr }

// Close stops the bridge.
func (b *Bridge) Close() error {
	b.cancel()
	b.ln.Close()
	if b.back != nil {
		b.back.Close()
	}
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

func (b *Bridge) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx.Err() != nil {
		c.Close()
		return false
	}
	b.conns = append(b.conns, c)
	return true
}

// accept returns the first connection on ln from allow (any when
// invalid) within AcceptTimeout, and closes ln: one connection each.
func (b *Bridge) accept(ln net.Listener, allow netip.Addr) net.Conn {
	defer ln.Close()
	tl := ln.(*net.TCPListener)
	tl.SetDeadline(time.Now().Add(b.cfg.AcceptTimeout))
	for {
		conn, err := tl.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				b.cfg.Logger.Debug("h245 bridge: no connection", "err", err)
			}
			return nil
		}
		src := conn.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		if allow.IsValid() && src != allow.Unmap() {
			conn.Close()
			continue
		}
		return conn
	}
}

func (b *Bridge) run() {
	defer b.wg.Done()
	c := b.accept(b.ln, b.cfg.AllowFrom)
	if c == nil {
		if b.back != nil {
			b.back.Close()
		}
		return
	}
	if !b.track(c) {
		return
	}
	var t net.Conn
	if b.back != nil {
		if t = b.accept(b.back, b.cfg.BackAllow); t == nil {
			c.Close()
			return
		}
	} else {
		var err error
		if t, err = b.dial(); err != nil {
			b.cfg.Logger.Debug("h245 bridge: connect", "target", b.cfg.Target, "err", err)
			c.Close()
			return
		}
		if b.cfg.Hello != nil {
			t.SetWriteDeadline(time.Now().Add(b.cfg.DialTimeout))
			_, err = t.Write(AppendFrame(nil, b.cfg.Hello))
			t.SetWriteDeadline(time.Time{})
			if err != nil {
				c.Close()
				t.Close()
				return
			}
		}
	}
	if !b.track(t) {
		c.Close()
		return
	}
	var once sync.Once
	stop := func() { once.Do(func() { c.Close(); t.Close() }) }
	if b.cfg.KeepAlive > 0 {
		out := c
		if b.cfg.Listen != Outside {
			out = t
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.keepAlive(out)
		}()
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.pump(c, t, b.cfg.Listen, stop)
	}()
	b.pump(t, c, b.cfg.Listen.Other(), stop)
}

// dial connects to Target, with Dial when set.
func (b *Bridge) dial() (net.Conn, error) {
	if b.cfg.Dial != nil {
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.DialTimeout)
		defer cancel()
		return b.cfg.Dial(ctx, b.cfg.Target)
	}
	d := net.Dialer{Timeout: b.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	if b.cfg.Bind.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: b.cfg.Bind.AsSlice()}
	}
	return d.DialContext(b.ctx, "tcp", b.cfg.Target.String())
}

// pump copies PDUs read from src (sent by side from) to dst, rewritten.
func (b *Bridge) pump(src, dst net.Conn, from Side, stop func()) {
	defer stop()
	r := NewFrameReader(src, b.cfg.MaxFrame)
	var out []byte
	for {
		if b.cfg.IdleTimeout > 0 {
			src.SetReadDeadline(time.Now().Add(b.cfg.IdleTimeout))
		}
		p, err := r.Next()
		if err != nil {
			if errors.Is(err, ErrFrame) && b.cfg.OnMalformed != nil {
				b.cfg.OnMalformed(from, err)
			}
			return
		}
		q, err := b.cfg.Session.RewritePDU(from, p)
		if err != nil {
			if b.cfg.OnMalformed != nil {
				b.cfg.OnMalformed(from, err)
			}
			return
		}
		out = AppendFrame(out[:0], q)
		if _, err := dst.Write(out); err != nil {
			return
		}
	}
}

// keepAlive writes an empty TPKT packet to c every KeepAlive until the
// bridge closes or a write fails (a Write is never interleaved with the
// pump's).
func (b *Bridge) keepAlive(c net.Conn) {
	t := time.NewTicker(b.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			c.SetWriteDeadline(time.Now().Add(b.cfg.KeepAlive))
			if _, err := c.Write([]byte{3, 0, 0, 4}); err != nil {
				return
			}
		}
	}
}
