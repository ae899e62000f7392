package tunnel

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
)

// maxMigrations bounds the paths one connection moves to. Each path keeps
// its socket until the connection ends (closing a quic-go Transport ends
// the connections it carries), so a flapping address cannot pile up
// sockets; past the bound the connection stays where it is and, when that
// path fails, the client reconnects.
const maxMigrations = 8

// clientPath is the client's side of one connection: the sockets its paths
// use, the server's address and the local address in use now.
type clientPath struct {
	raddr *net.UDPAddr
	mu    sync.Mutex // guards trs and src
	trs   []*quic.Transport
	src   netip.Addr // the address the active path's socket is bound to
}

// routeSource is the local address the system routes toward raddr from;
// connecting a UDP socket sends nothing.
func routeSource(raddr *net.UDPAddr) (netip.Addr, bool) {
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return netip.Addr{}, false
	}
	defer c.Close()
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return ap.Addr().Unmap(), true
}

// newPathTransport binds a socket on src (any address when src is not
// valid) and wraps it in a quic-go Transport the path owns.
func (p *clientPath) newPathTransport(src netip.Addr) (*quic.Transport, error) {
	la := &net.UDPAddr{}
	if src.IsValid() {
		la.IP = src.AsSlice()
	}
	pc, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: pathConn{pc}}
	p.mu.Lock()
	p.trs = append(p.trs, tr)
	p.src = src
	p.mu.Unlock()
	return tr, nil
}

// close closes every socket of the connection's paths.
func (p *clientPath) close() {
	p.mu.Lock()
	trs := p.trs
	p.trs = nil
	p.mu.Unlock()
	for _, tr := range trs {
		_ = tr.Close()
		_ = tr.Conn.Close()
	}
}

// pathConn is a client path's socket. A send that fails because the
// socket's address or its route is gone (an interface renumbered without
// the new address first) is reported to quic-go as sent, so the packet
// counts as lost instead of ending the connection at once: followAddress
// then has until idle_timeout to move the connection to the new address.
// A path that stays without a route fails at idle_timeout as any other.
type pathConn struct{ *net.UDPConn }

func (p pathConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	n, oobn, err := p.UDPConn.WriteMsgUDP(b, oob, addr)
	if routeGone(err) {
		return len(b), len(oob), nil
	}
	return n, oobn, err
}

func (p pathConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := p.UDPConn.WriteTo(b, addr)
	if routeGone(err) {
		return len(b), nil
	}
	return n, err
}

func routeGone(err error) bool {
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.EADDRNOTAVAIL)
}

// followAddress moves conn to a new path whenever the system's source
// address toward the server changes (a renumbered or replaced interface,
// a moved default route), checking every keep-alive interval until ctx
// ends. The new path is probed (RFC 9000 section 9.1) before the
// connection switches to it, so flows continue without a reconnect; a
// probe that fails leaves the connection on its path. Migrations of the
// tunnel connection (count) are counted.
func (c *Client) followAddress(ctx context.Context, conn *quic.Conn, p *clientPath, count bool) {
	tick := time.NewTicker(c.cfg.KeepAlive)
	defer tick.Stop()
	moved := 0
	for moved < maxMigrations {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		src, ok := routeSource(p.raddr)
		p.mu.Lock()
		cur := p.src
		p.mu.Unlock()
		if !ok || !cur.IsValid() || src == cur {
			continue
		}
		moved++
		if err := c.migrate(ctx, conn, p, src); err != nil {
			c.log.Warn("tunnel migration failed", "server", p.raddr.String(), "from", cur, "to", src, "err", err)
			// The failed path's socket stays with the connection; the
			// next tick tries again from the current address.
			p.mu.Lock()
			p.src = cur
			p.mu.Unlock()
			continue
		}
		if !count {
			continue
		}
		c.migrations.Add(1)
		c.log.Info("tunnel migrated", "server", p.raddr.String(), "from", cur, "to", src)
	}
}

// migrate probes a path from src and switches conn to it.
func (c *Client) migrate(ctx context.Context, conn *quic.Conn, p *clientPath, src netip.Addr) error {
	tr, err := p.newPathTransport(src)
	if err != nil {
		return err
	}
	path, err := conn.AddPath(tr)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, c.cfg.IdleTimeout)
	defer cancel()
	if err := path.Probe(pctx); err != nil {
		_ = path.Close()
		return err
	}
	return path.Switch()
}
