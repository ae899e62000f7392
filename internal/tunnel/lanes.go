package tunnel

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// Datagram connections. quic-go gives each connection one congestion
// window, one send queue of 32 datagrams and one receive queue of 128; an
// end that waits for a CPU acknowledges late, the peer's window closes and
// its sender blocks, and datagrams beyond the receive queue are dropped.
// Several connections between the same two ends share that load: the
// client dials DatagramConnections-1 more after the tunnel connection,
// authenticated with the same pinned certificates under their own
// protocol name, and each end hashes every flow onto one of them (lanes).
// Streams, control requests and the server's election use the tunnel
// connection only. A lane whose connection is down sends on the tunnel
// connection until the client has dialled it again.

// alpnDatagrams names a client's extra datagram connection.
const alpnDatagrams = "portico-tunnel-datagrams/2"

// runLanes keeps the client's extra datagram connections up while ctx
// (the tunnel connection's life) lasts.
func (c *Client) runLanes(ctx context.Context, wg, flows *sync.WaitGroup) {
	for _, l := range c.lanes[1:] {
		wg.Go(func() { c.runLane(ctx, l, flows) })
	}
}

// runLane dials lane l's connection, carries what arrives on it, and dials
// again after a jittered backoff when it drops, until ctx ends. A server
// that does not offer datagram connections leaves the lane on the tunnel
// connection.
func (c *Client) runLane(ctx context.Context, l *lane, flows *sync.WaitGroup) {
	for failures := 0; ctx.Err() == nil; {
		dctx, cancel := context.WithTimeout(ctx, 2*c.cfg.IdleTimeout)
		conn, path, err := c.dialPath(dctx, c.tlsConfig(alpnDatagrams, c.pinned))
		cancel()
		var te *quic.TransportError
		if errors.As(err, &te) && te.ErrorCode == quic.TransportErrorCode(0x100+120) {
			c.log.Info("tunnel server takes no datagram connections; its flows stay on the tunnel connection", "lane", l.index)
			return
		}
		if err == nil {
			since := time.Now()
			l.conn.Store(conn)
			fctx, stop := context.WithCancel(ctx)
			var follow sync.WaitGroup
			follow.Go(func() { c.followAddress(fctx, conn, path, false) })
			c.serveConn(ctx, conn, flows)
			l.conn.CompareAndSwap(conn, nil)
			stop()
			follow.Wait()
			path.close()
			if ctx.Err() != nil {
				return
			}
			c.laneDrops.Add(1)
			c.log.Warn("tunnel datagram connection down", "lane", l.index, "cause", context.Cause(conn.Context()))
			if time.Since(since) > c.cfg.IdleTimeout {
				failures = 0
			}
		}
		d := backoff(c.cfg.BackoffMin, c.cfg.BackoffMax, failures)
		failures++
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}

// laneGroup is the server's datagram connections of its clients, by
// client certificate fingerprint, in the order they came.
type laneGroup struct {
	mu    sync.Mutex
	conns map[string][]*quic.Conn
}

func (g *laneGroup) add(fp string, c *quic.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns == nil {
		g.conns = map[string][]*quic.Conn{}
	}
	g.conns[fp] = append(g.conns[fp], c)
}

func (g *laneGroup) remove(fp string, c *quic.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cs := g.conns[fp]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(g.conns, fp)
	} else {
		g.conns[fp] = cs
	}
}

func (g *laneGroup) of(fp string) []*quic.Conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*quic.Conn(nil), g.conns[fp]...)
}

// serveLane carries a client's datagram connection until it ends.
func (s *Server) serveLane(ctx context.Context, c *quic.Conn, wg *sync.WaitGroup) {
	fp := peerFingerprint(c)
	s.laneConns.add(fp, c)
	s.assignLanes()
	s.end.serveConn(ctx, c, wg)
	s.laneConns.remove(fp, c)
	s.assignLanes()
}

// assignLanes points the server's lanes at the active client's datagram
// connections, in turn; lanes beyond them, and all while the client has
// none, send on the tunnel connection.
func (s *Server) assignLanes() {
	s.emu.Lock()
	defer s.emu.Unlock()
	s.assignLanesLocked()
}

// assignLanesLocked is assignLanes with s.emu held.
func (s *Server) assignLanesLocked() {
	var cs []*quic.Conn
	if active := s.conn.Load(); active != nil {
		cs = s.laneConns.of(peerFingerprint(active))
	}
	s.clients.mu.Lock()
	for _, p := range s.clients.peers {
		ls := s.laneConns.of(p.fp)
		p.lanes.Store(&ls)
	}
	s.clients.mu.Unlock()
	for i, l := range s.lanes[1:] {
		if len(cs) == 0 {
			l.conn.Store(nil)
			continue
		}
		l.conn.Store(cs[i%len(cs)])
	}
}
