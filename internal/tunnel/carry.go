package tunnel

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-edge/portico/internal/batchio"
	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/quic-go/quic-go"
)

// Both ends carry flows the same way. A service with a Listen address is
// offered on this end: a TCP connection accepted there opens a stream, and
// each UDP source address there is a flow of datagrams. A service with a
// Target is delivered on this end: streams and datagrams from the peer are
// connected to the target. The DMZ node offers the services inside servers
// provide; the inside node offers the services DMZ servers provide (reverse
// services), so that inside servers reach the DMZ node over the connection
// the inside node dialed.

// flowKey names a delivered UDP flow: the peer numbers its flows itself,
// so on a server with several clients the same service and id from two
// clients are two flows (peer tells the clients apart; 0 on a client,
// whose one peer is the server).
type flowKey struct {
	service string
	id      uint32
	peer    uint32
}

// targetFlow is one UDP flow delivered to a service's target from its own
// socket.
type targetFlow struct {
	conn *net.UDPConn
	st   *serviceStats
	// via is the connection the flow's last datagram came on; a server's
	// replies go back on it, to the client that sent it.
	via atomic.Pointer[quic.Conn]
	// A flow read by the end's localPoller: its socket there, and when it
	// last read a reply (or opened), in Unix nanoseconds, for the idle
	// sweep (sweepFlows). Nil for a flow read by its own goroutine.
	polled atomic.Pointer[polledSock]
	last   atomic.Int64
	ended  atomic.Bool
}

// openFlow opens a TCP flow of the named service through the tunnel. The
// service must be TCP and not delivered on this end.
func (e *end) openFlow(ctx context.Context, service string) (net.Conn, error) {
	return e.openFlowAt(ctx, service, 0)
}

// openFlowAt is openFlow for the port of a range service at index.
func (e *end) openFlowAt(ctx context.Context, service string, index uint32) (net.Conn, error) {
	svc, ok := e.cfg.service(service)
	if !ok || svc.Proto != "tcp" || svc.Target != "" || len(svc.Networks) > 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownService, service)
	}
	c, st, err := e.openStream(ctx, KindTCP, service, index, nil)
	if err != nil {
		return nil, err
	}
	return newStreamConn(st, c, e.svc[service]), nil
}

// openStream opens a stream on the live connection and writes its header
// (of kind, for the port of service at index) followed by more.
func (e *end) openStream(ctx context.Context, kind Kind, service string, index uint32, more []byte) (*quic.Conn, *quic.Stream, error) {
	c := e.conn.Load()
	if e.pick != nil {
		c = e.pick(Header{Kind: KindTCP, Service: service}, nil, 0)
	}
	if c == nil {
		return nil, nil, ErrNoPeer
	}
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("tunnel: open stream: %w", err)
	}
	// A range service's flow names its port by index, as for UDP.
	flow := index<<flowIndexShift | uint32(st.StreamID()>>2)&(1<<flowIndexShift-1)
	if _, err := st.Write(append(Header{Kind: kind, Flow: flow, Service: service}.Append(nil), more...)); err != nil {
		st.CancelRead(0)
		st.CancelWrite(0)
		return nil, nil, fmt.Errorf("tunnel: open stream: %w", err)
	}
	return c, st, nil
}

// ServiceAddr is where a service with a Listen address is bound on this
// end, once the end runs; nil before.
func (e *end) ServiceAddr(name string) net.Addr {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	return e.addrs[name]
}

// listenServices binds the offered services' local listeners and starts
// their loops; they live until ctx ends, across reconnections.
func (e *end) listenServices(ctx context.Context, wg *sync.WaitGroup) error {
	// One goroutine reads the local UDP sockets where the system allows
	// (localPoller); otherwise each socket has its own.
	if p, err := newLocalPoller(); err == nil {
		e.poll.Store(p)
		wg.Go(func() { <-ctx.Done(); p.stop() })
		if e.cfg.FlowIdle > 0 {
			wg.Go(func() { e.sweepFlows(ctx) })
		}
	}
	for _, svc := range e.cfg.Services {
		if svc.Listen == "" {
			continue
		}
		switch svc.Proto {
		case "tcp":
			host, lo, hi, err := portRange(svc.Listen)
			if err != nil {
				return fmt.Errorf("tunnel: service %s: %w", svc.Name, err)
			}
			idle := max(svc.IdleTimeout, 0) // unset or negative: never
			// Users of an offered service cannot hold more than MaxFlows
			// connections on all its ports together (64 from one
			// address), nor idle ones for longer than the service's idle
			// timeout; a connection beyond is refused and counted.
			st := e.svc[svc.Name]
			lim := connlimit.Config{Name: "tunnel-" + svc.Name, MaxConns: e.cfg.MaxFlows, MaxConnsPerSource: maxFlowsPerSource,
				IdleTimeout: idle, Group: connlimit.NewGroup(), Refused: func(string) { st.flowsRefused.Add(1) }}
			lns := make([]net.Listener, 0, hi-lo+1)
			for port := lo; port <= hi; port++ {
				tl, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
				if err != nil {
					for _, ln := range lns {
						_ = ln.Close()
					}
					return fmt.Errorf("tunnel: service %s: %w", svc.Name, err)
				}
				lns = append(lns, connlimit.Wrap(tl, lim, connlimit.Deps{Logger: e.log}))
			}
			e.fmu.Lock()
			e.addrs[svc.Name] = lns[0].Addr()
			e.fmu.Unlock()
			for i, ln := range lns {
				wg.Go(func() { <-ctx.Done(); _ = ln.Close() })
				wg.Go(func() { e.acceptTCP(ctx, ln, svc.Name, uint32(i), wg) })
			}
		case "udp":
			host, lo, hi, err := portRange(svc.Listen)
			if err != nil {
				return fmt.Errorf("tunnel: service %s: %w", svc.Name, err)
			}
			us := make([]*udpService, 0, hi-lo+1)
			for port := lo; port <= hi; port++ {
				lp, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
				if err != nil {
					for _, u := range us {
						_ = u.pc.Close()
					}
					return fmt.Errorf("tunnel: service %s: %w", svc.Name, err)
				}
				us = append(us, &udpService{e: e, name: svc.Name, index: uint32(len(us)), pc: lp.(*net.UDPConn), st: e.svc[svc.Name],
					idle: e.cfg.FlowIdle, max: e.cfg.MaxFlows, bySrc: map[netip.AddrPort]*udpFlow{}, byID: map[uint32]*udpFlow{}})
			}
			e.fmu.Lock()
			e.addrs[svc.Name] = us[0].pc.LocalAddr()
			e.udp[svc.Name] = us
			e.fmu.Unlock()
			for _, u := range us {
				wg.Go(func() { <-ctx.Done(); _ = u.pc.Close() })
				if p := e.poll.Load(); p != nil {
					if _, err := p.add(u.pc, func(m *batchio.Message) { u.received(m.Data(), m.Addr) }, nil); err == nil {
						continue
					}
				}
				wg.Go(u.readLoop)
			}
		}
	}
	return nil
}

func (e *end) acceptTCP(ctx context.Context, ln net.Listener, name string, index uint32, wg *sync.WaitGroup) {
	for {
		lc, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			rc, err := e.openFlowAt(ctx, name, index)
			if err != nil {
				e.log.Debug("tunnel flow refused", "service", name, "err", err)
				_ = lc.Close()
				return
			}
			pump(lc, rc)
		})
	}
}

// serveConn carries the peer's streams and datagrams until the connection
// ends; the flows it starts run on wg.
func (e *end) serveConn(ctx context.Context, conn *quic.Conn, wg *sync.WaitGroup) {
	peer := e.peerID(conn)
	var cw sync.WaitGroup
	cw.Go(func() {
		for {
			st, err := conn.AcceptStream(ctx)
			if err != nil {
				return
			}
			wg.Go(func() { e.serveStream(ctx, conn, st) })
		}
	})
	// quic-go keeps at most 128 received datagrams and drops the rest
	// uncounted; a reader that only moves them into our own bounded queue
	// keeps up while the delivering loop below waits on its socket writes
	// or for a CPU.
	in := make(chan received, e.cfg.DatagramQueue)
	cw.Go(func() {
		defer close(in)
		for {
			b, err := conn.ReceiveDatagram(ctx)
			if err != nil {
				return
			}
			e.bundlesIn.Add(1)
			select {
			case in <- received{b, time.Now()}:
			default:
				e.droppedReceive.Add(1)
			}
		}
	})
	entries := make([][]byte, 0, maxBundleEntries)
	for r := range in {
		var err error
		entries, err = ParseBundle(r.b, entries[:0])
		if err != nil {
			e.badHeaders.Add(1)
			continue
		}
		for _, en := range entries {
			e.route(ctx, conn, peer, en, wg)
		}
		e.delivering.add(time.Since(r.at))
	}
	_ = conn.CloseWithError(codeShutdown, "")
	cw.Wait()
}

// received is a bundle taken from quic-go and when it was taken.
type received struct {
	b  []byte
	at time.Time
}

// route delivers one flow datagram from the peer: to the local source of a
// flow of an offered service, or to the target of a delivered one.
func (e *end) route(ctx context.Context, conn *quic.Conn, peer uint32, b []byte, wg *sync.WaitGroup) {
	h, n, err := e.parseEntry(b)
	if err != nil || h.Kind != KindUDP {
		e.badHeaders.Add(1)
		return
	}
	e.fmu.Lock()
	us := e.udp[h.Service]
	e.fmu.Unlock()
	if us != nil {
		if i := h.Flow >> flowIndexShift; int(i) >= len(us) || !us[i].deliver(h.Flow, b[n:]) {
			e.droppedUnknown.Add(1)
		}
		return
	}
	e.deliver(ctx, conn, peer, h, b[n:], wg)
}

// peerID numbers the peer conn authenticated as, the same for each of its
// connections (its datagram connections and a reconnection): 0 on a
// client (its peer is the server) or without a certificate.
func (e *end) peerID(conn *quic.Conn) uint32 {
	if e.pick == nil || conn == nil || len(conn.ConnectionState().TLS.PeerCertificates) == 0 {
		return 0
	}
	fp := peerFingerprint(conn)
	e.fmu.Lock()
	defer e.fmu.Unlock()
	id, ok := e.peers[fp]
	if !ok {
		id = uint32(len(e.peers)) + 1
		e.peers[fp] = id
	}
	return id
}

// parseEntry is Parse for a bundle entry, with the service name taken from
// the configuration when it names a configured service, so that the steady
// path allocates nothing.
func (e *end) parseEntry(b []byte) (Header, int, error) {
	if len(b) >= headerFixed && b[0]>>4 == headerVersion && len(b) >= headerFixed+int(b[5]) {
		if name, ok := e.names[string(b[headerFixed:headerFixed+int(b[5])])]; ok {
			h := Header{Kind: Kind(b[0] & 0x0f), Flow: binary.BigEndian.Uint32(b[1:5]), Service: name}
			if err := h.valid(); err != nil {
				return Header{}, 0, err
			}
			return h, headerFixed + len(name), nil
		}
	}
	return Parse(b)
}

// serveStream connects one TCP flow from the peer to its service's target.
func (e *end) serveStream(ctx context.Context, conn *quic.Conn, st *quic.Stream) {
	_ = st.SetReadDeadline(time.Now().Add(e.cfg.IdleTimeout))
	h, err := ReadHeader(st)
	_ = st.SetReadDeadline(time.Time{})
	if err != nil {
		e.badHeaders.Add(1)
		st.CancelRead(codeUnknownService)
		st.CancelWrite(codeUnknownService)
		return
	}
	if h.Kind == KindControl && e.control != nil {
		e.control(conn, st)
		return
	}
	if h.Kind == KindDial {
		e.serveDial(ctx, conn, st, h)
		return
	}
	svc, ok := e.cfg.service(h.Service)
	if !ok || svc.Proto != "tcp" || svc.Target == "" || h.Kind != KindTCP {
		e.droppedUnknown.Add(1)
		e.log.Debug("tunnel flow for an unknown service", "service", h.Service)
		st.CancelRead(codeUnknownService)
		st.CancelWrite(codeUnknownService)
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	if svc.Source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(svc.Source)}
	}
	// A range service's flow names its port by index in the range.
	host, lo, hi, err := portRange(svc.Target)
	if port := lo + int(h.Flow>>flowIndexShift); err == nil && port <= hi {
		lo = port
	} else {
		err = fmt.Errorf("%w: flow %#x beyond the target range", ErrHeader, h.Flow)
	}
	var tc net.Conn
	if err == nil {
		tc, err = d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(lo)))
	}
	if err != nil {
		e.log.Debug("tunnel flow target unreachable", "service", h.Service, "err", err)
		st.CancelRead(codeDialFailed)
		st.CancelWrite(codeDialFailed)
		return
	}
	pump(newStreamConn(st, conn, e.svc[h.Service]), tc)
}

// deliver sends one datagram to its flow's target, opening the flow's
// socket on its first datagram. A service holds at most MaxFlows such
// flows; a datagram for a new flow beyond is dropped and counted.
func (e *end) deliver(ctx context.Context, conn *quic.Conn, peer uint32, h Header, p []byte, wg *sync.WaitGroup) {
	key := flowKey{h.Service, h.Flow, peer}
	e.fmu.Lock()
	f := e.flows[key]
	e.fmu.Unlock()
	if f == nil {
		svc, ok := e.cfg.service(h.Service)
		if !ok || svc.Proto != "udp" || svc.Target == "" {
			e.droppedUnknown.Add(1)
			return
		}
		st := e.svc[h.Service]
		if st.flows.Load() >= int64(e.cfg.MaxFlows) {
			st.flowsRefused.Add(1)
			return
		}
		// A range service's flow names its port by index in the range.
		host, lo, hi, err := portRange(svc.Target)
		port := lo + int(h.Flow>>flowIndexShift)
		if err != nil || port > hi {
			e.droppedUnknown.Add(1)
			return
		}
		raddr, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			e.droppedUnknown.Add(1)
			return
		}
		var laddr *net.UDPAddr
		if svc.Source != "" {
			laddr = &net.UDPAddr{IP: net.ParseIP(svc.Source)}
		}
		uc, err := net.DialUDP("udp", laddr, raddr)
		if err != nil {
			e.droppedUnknown.Add(1)
			return
		}
		e.fmu.Lock()
		if ctx.Err() != nil {
			e.fmu.Unlock()
			_ = uc.Close()
			return
		}
		// Each datagram connection delivers from its own loop: another
		// may have opened the flow meanwhile.
		if g := e.flows[key]; g != nil {
			e.fmu.Unlock()
			_ = uc.Close()
			g.via.Store(conn)
			g.st.bytesIn.Add(uint64(len(p)))
			_, _ = g.conn.Write(p)
			return
		}
		f = &targetFlow{conn: uc, st: st}
		f.via.Store(conn)
		e.flows[key] = f
		e.fmu.Unlock()
		f.st.flows.Add(1)
		f.st.flowsTotal.Add(1)
		e.startFlow(key, f, wg)
	} else if f.via.Load() != conn {
		f.via.Store(conn)
	}
	f.st.bytesIn.Add(uint64(len(p)))
	_, _ = f.conn.Write(p)
}

// startFlow carries a new UDP flow's replies back: read by the end's
// localPoller, or by a goroutine of its own (flowLoop) where there is none.
func (e *end) startFlow(key flowKey, f *targetFlow, wg *sync.WaitGroup) {
	if p := e.poll.Load(); p != nil {
		f.last.Store(time.Now().UnixNano())
		h := Header{Kind: KindUDP, Flow: key.id, Service: key.service}
		ps, err := p.add(f.conn, func(m *batchio.Message) {
			f.last.Store(time.Now().UnixNano())
			var to *quic.Conn
			if e.pick != nil {
				to = f.via.Load()
			}
			e.enqueueTo(h, m.Data(), f.st, to)
		}, func() {
			// Refused by the target: the flow ends, and the next
			// datagram for it opens it again.
			e.endFlow(key, f)
		})
		if err == nil {
			f.polled.Store(ps)
			if f.ended.Load() { // ended meanwhile, before it could be forgotten
				p.remove(ps)
			}
			return
		}
	}
	wg.Go(func() { e.flowLoop(key, f) })
}

// endFlow forgets a UDP flow and closes its socket, once.
func (e *end) endFlow(key flowKey, f *targetFlow) {
	if !f.ended.CompareAndSwap(false, true) {
		return
	}
	e.fmu.Lock()
	if e.flows[key] == f {
		delete(e.flows, key)
	}
	e.fmu.Unlock()
	_ = f.conn.Close()
	f.st.flows.Add(-1)
	if ps := f.polled.Load(); ps != nil {
		if p := e.poll.Load(); p != nil {
			p.remove(ps)
		}
	}
}

// sweepFlows ends the polled UDP flows that read no reply for FlowIdle,
// checking every quarter of it, until ctx ends.
func (e *end) sweepFlows(ctx context.Context) {
	t := time.NewTicker(e.cfg.FlowIdle / 4)
	defer t.Stop()
	type idleFlow struct {
		key flowKey
		f   *targetFlow
	}
	var idle []idleFlow
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cut := now.Add(-e.cfg.FlowIdle).UnixNano()
			e.fmu.Lock()
			for k, f := range e.flows {
				if f.polled.Load() != nil && f.last.Load() < cut {
					idle = append(idle, idleFlow{k, f})
				}
			}
			e.fmu.Unlock()
			for _, x := range idle {
				e.endFlow(x.key, x.f)
			}
			clear(idle)
			idle = idle[:0]
		}
	}
}

// flowLoop carries a UDP flow's replies back until it is idle for FlowIdle
// or closed.
func (e *end) flowLoop(key flowKey, f *targetFlow) {
	defer e.endFlow(key, f)
	buf := make([]byte, 64*1024)
	h := Header{Kind: KindUDP, Flow: key.id, Service: key.service}
	for {
		_ = f.conn.SetReadDeadline(time.Now().Add(e.cfg.FlowIdle))
		n, err := f.conn.Read(buf)
		if err != nil {
			// Idle, closed, or refused by the target: the flow ends, and the
			// next datagram for it opens it again.
			return
		}
		var to *quic.Conn
		if e.pick != nil {
			to = f.via.Load()
		}
		e.enqueueTo(h, buf[:n], f.st, to)
	}
}

// closeFlows ends the target flows (a flow's own goroutine, if it has
// one, ends with its socket).
func (e *end) closeFlows() {
	e.fmu.Lock()
	flows := make(map[flowKey]*targetFlow, len(e.flows))
	for k, f := range e.flows {
		flows[k] = f
	}
	e.fmu.Unlock()
	for k, f := range flows {
		e.endFlow(k, f)
	}
}

// udpService carries the flows of one port of an offered UDP service:
// each local source address is a flow. The flows of all the ports of a
// range service share its MaxFlows.
type udpService struct {
	e     *end
	name  string
	index uint32 // the port's index in the service's range
	pc    *net.UDPConn
	st    *serviceStats
	idle  time.Duration
	max   int // flows at most; a new source beyond is dropped and counted

	mu        sync.Mutex
	next      uint32
	bySrc     map[netip.AddrPort]*udpFlow
	byID      map[uint32]*udpFlow
	lastSweep time.Time
}

type udpFlow struct {
	id   uint32
	src  netip.AddrPort
	last time.Time
	via  *peerConn // server: the client carrying the flow; readLoop's own
}

func (u *udpService) readLoop() {
	buf := make([]byte, 64*1024)
	for {
		n, src, err := u.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		u.received(buf[:n], src)
	}
}

// received carries a datagram from the local source src into the tunnel,
// opening its flow if it is new.
func (u *udpService) received(p []byte, src netip.AddrPort) {
	now := time.Now()
	u.mu.Lock()
	f := u.bySrc[src]
	full := f == nil && u.st.flows.Load() >= int64(u.max)
	if f == nil && (now.Sub(u.lastSweep) > u.idle/4 || (full && now.Sub(u.lastSweep) > time.Second)) {
		u.lastSweep = now
		u.sweep(now)
		full = u.st.flows.Load() >= int64(u.max)
	}
	if full {
		u.mu.Unlock()
		u.st.flowsRefused.Add(1)
		return
	}
	if f == nil {
		u.next = (u.next + 1) & (1<<flowIndexShift - 1)
		f = &udpFlow{id: u.index<<flowIndexShift | u.next, src: src}
		u.bySrc[src] = f
		u.byID[f.id] = f
		u.st.flows.Add(1)
		u.st.flowsTotal.Add(1)
	}
	f.last = now
	id := f.id
	u.mu.Unlock()
	h := Header{Kind: KindUDP, Flow: id, Service: u.name}
	var to *quic.Conn
	if u.e.pick != nil {
		if to = u.e.pick(h, &f.via, u.e.laneOf(h).index); to == nil {
			u.e.droppedNoPeer.Add(1)
			return
		}
	}
	u.e.enqueueTo(h, p, u.st, to)
}

// sweep ends the flows idle for longer than u.idle; u.mu is held.
func (u *udpService) sweep(now time.Time) {
	for k, g := range u.bySrc {
		if now.Sub(g.last) > u.idle {
			delete(u.bySrc, k)
			delete(u.byID, g.id)
			u.st.flows.Add(-1)
		}
	}
}

// deliver sends a datagram from the tunnel to the flow's local source.
func (u *udpService) deliver(id uint32, p []byte) bool {
	u.mu.Lock()
	f := u.byID[id]
	var dst netip.AddrPort
	if f != nil {
		dst = f.src
	}
	u.mu.Unlock()
	if f == nil {
		return false
	}
	u.st.bytesIn.Add(uint64(len(p)))
	_, _ = u.pc.WriteToUDPAddrPort(p, dst)
	return true
}
