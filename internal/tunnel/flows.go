package tunnel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

const (
	// alpnTunnel names the tunnel protocol: version 2 carries datagrams
	// in bundles. Version 1 (a datagram per flow packet) is what an older
	// build speaks; the server names it only to refuse it clearly.
	alpnTunnel   = "portico-tunnel/2"
	alpnTunnelV1 = "portico-tunnel/1"
	alpnEnroll   = "portico-enroll/1"

	// Application error codes on CONNECTION_CLOSE and stream resets.
	codeShutdown       quic.ApplicationErrorCode = 0
	codeReplaced       quic.ApplicationErrorCode = 1
	codeEnrollRefused  quic.ApplicationErrorCode = 2
	codeUnknownService quic.StreamErrorCode      = 3
	codeDialFailed     quic.StreamErrorCode      = 4
	codeVersion        quic.ApplicationErrorCode = 5

	maxDatagram = 1500 // a UDP payload plus header never needs more on the wire
)

// serviceStats counts one service's traffic. Fields are updated atomically.
type serviceStats struct {
	bytesIn, bytesOut atomic.Uint64 // in: from the tunnel; out: into it
	flows             atomic.Int64  // open now
	flowsTotal        atomic.Uint64
	flowsRefused      atomic.Uint64 // new UDP sources and TCP connections beyond MaxFlows
	dialsRefused      atomic.Uint64 // dial destinations outside Networks
	moves             atomic.Uint64 // server: changes of the clients serving it
}

// ServiceStats is a snapshot of one service's counters. In counts bytes
// received from the tunnel, Out bytes sent into it.
type ServiceStats struct {
	Name       string `json:"name"`
	Proto      string `json:"proto"`
	BytesIn    uint64 `json:"bytes_in"`
	BytesOut   uint64 `json:"bytes_out"`
	Flows      int64  `json:"flows"`
	FlowsTotal uint64 `json:"flows_total"`
	// FlowsRefused counts new UDP sources dropped, and TCP connections
	// refused, beyond max_flows (or 64 connections from one address).
	FlowsRefused uint64 `json:"flows_refused"`
	// DialsRefused counts the peer's dials to a destination outside the
	// dial service's networks.
	DialsRefused uint64 `json:"dials_refused,omitempty"`
	// Server, for a service carried to clients: its Mode, the addresses
	// of the clients serving it now (in mode one, the one), and how many
	// times that set changed.
	Mode     string   `json:"mode,omitempty"`
	ServedBy []string `json:"served_by,omitempty"`
	Moves    uint64   `json:"moves,omitempty"`
}

// Stats is a snapshot of one tunnel end.
type Stats struct {
	Role       string         `json:"role"`
	State      string         `json:"state"` // "up" or "down"
	Peer       string         `json:"peer,omitempty"`
	RTT        time.Duration  `json:"rtt_ns"`
	Reconnects uint64         `json:"reconnects"`
	Services   []ServiceStats `json:"services"`
	// Flow datagrams dropped: send queue full, larger than the path
	// allows, no connection up, or naming an unknown flow or service.
	DroppedQueueFull uint64 `json:"dropped_queue_full"`
	// Received QUIC datagrams (bundles) dropped because the receive queue
	// was full: the delivering loop fell behind the connection.
	DroppedReceiveQueueFull uint64 `json:"dropped_receive_queue_full"`
	// QUIC datagrams sent, and the flow datagrams they carried in bundles.
	BundlesSent      uint64 `json:"bundles_sent"`
	BundledDatagrams uint64 `json:"bundled_datagrams"`
	// QUIC datagrams received from the peer. The peer's bundles_sent less
	// these is what the path and quic-go's receive queue (128 datagrams,
	// drops not counted by quic-go) lost.
	BundlesReceived uint64 `json:"bundles_received"`
	// SendWait is the time the sender waited for quic-go to take a
	// bundle (its send queue of 32 full, mostly because the congestion
	// window is), summed; the send queue fills meanwhile.
	SendWait time.Duration `json:"send_wait_ns"`
	// CongestionWindow is the live connection's congestion window in
	// bytes: what may be in flight unacknowledged.
	CongestionWindow uint64 `json:"congestion_window"`
	// QUIC packets of the live connection: sent, received, and those of
	// the sent that the peer never acknowledged (lost on the path or
	// dropped by the peer before it read them).
	PacketsSent     uint64 `json:"packets_sent"`
	PacketsReceived uint64 `json:"packets_received"`
	PacketsLost     uint64 `json:"packets_lost"`
	DroppedTooLarge uint64 `json:"dropped_too_large"`
	// Delays are where this end held flow datagrams (see Delays).
	Delays         *Delays `json:"delays,omitempty"`
	DroppedNoPeer  uint64  `json:"dropped_no_peer"`
	DroppedUnknown uint64  `json:"dropped_unknown"`
	BadHeaders     uint64  `json:"bad_headers"`
	// Handshakes refused (unpinned certificate) and enrollments refused.
	Rejected       uint64 `json:"rejected"`
	EnrollRefused  uint64 `json:"enroll_refused"`
	EnrollAccepted uint64 `json:"enroll_accepted"`
	// Connections counts tunnel connections established (client) or
	// accepted (server); Migrations those the client moved to a new
	// local address without reconnecting.
	Connections uint64 `json:"connections"`
	Migrations  uint64 `json:"migrations"`
	// DatagramConnections are the connections carrying datagrams, the
	// first being the tunnel connection itself; BundlesSent and SendWait
	// above are their sums, the QUIC packet counts the first one's.
	DatagramConnections []DatagramConnStats `json:"datagram_connections"`
	// DatagramConnectionDrops counts the client's extra datagram
	// connections that went down while the tunnel connection stayed up.
	DatagramConnectionDrops uint64 `json:"datagram_connection_drops,omitempty"`
	// Fingerprint is this end's certificate's SHA-256, lowercase hex.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Clients counts the clients connected to a server; Peer is the
	// active one.
	Clients int `json:"clients,omitempty"`
	// ClientList is, on a server, each connected client: its address,
	// certificate fingerprint, priority and the services it announced with
	// its priority for each, the active one first.
	ClientList []ClientStats `json:"client_list,omitempty"`
	// Problem names what keeps a client from connecting that needs an
	// administrator: "server certificate changed: re-enroll" when the
	// server presents a certificate not pinned here (PresentedFingerprint).
	Problem              string `json:"problem,omitempty"`
	PresentedFingerprint string `json:"presented_fingerprint,omitempty"`
}

// Delays are the times one end holds flow datagrams, since it started:
// Queued from a datagram's read on a local socket until its bundle is
// handed to quic-go (counted once per bundle, for its oldest datagram),
// Sending the time quic-go took to accept each bundle (its send queue of
// 32 full), Delivering from quic-go handing over a received bundle until
// its last datagram was written to its local socket. A datagram's time
// in this end is Queued plus Sending on the way in, Delivering on the
// way out; the rest of a round trip is quic-go, the kernel and the peer.
type Delays struct {
	Queued     DelayStats `json:"queued"`
	Sending    DelayStats `json:"sending"`
	Delivering DelayStats `json:"delivering"`
}

// ClientStats is one client connected to a server.
type ClientStats struct {
	Addr        string         `json:"addr"`
	Fingerprint string         `json:"fingerprint"`
	Priority    int            `json:"priority"`
	Services    map[string]int `json:"services"`
	Since       time.Time      `json:"since"`
}

// DatagramConnStats is a snapshot of one datagram connection: the lane of
// flows hashed onto it and the connection it sends them on now.
type DatagramConnStats struct {
	Index int    `json:"index"`
	State string `json:"state"` // "up" while the lane has a connection to send on
	// Own is false while the lane's own connection is down and its flows
	// go on the first connection.
	Own  bool   `json:"own"`
	Peer string `json:"peer,omitempty"`
	// BundlesSent and SendWait count the lane's bundles and the time its
	// sender waited for quic-go to take them.
	BundlesSent      uint64        `json:"bundles_sent"`
	SendWait         time.Duration `json:"send_wait_ns"`
	RTT              time.Duration `json:"rtt_ns"`
	CongestionWindow uint64        `json:"congestion_window"`
	PacketsSent      uint64        `json:"packets_sent"`
	PacketsLost      uint64        `json:"packets_lost"`
}

// end is what both roles share: the live connection, the datagram queue and
// the counters.
type end struct {
	cfg   Config
	log   *slog.Logger
	conn  atomic.Pointer[quic.Conn]
	lanes []*lane                     // one per datagram connection; lanes[0] sends on conn
	poll  atomic.Pointer[localPoller] // reads the local UDP sockets; nil: a goroutine each
	free  chan *dgram                 // buffers for the lanes' queues, reused
	svc   map[string]*serviceStats
	names map[string]string // each configured service name to itself

	fmu   sync.Mutex // guards addrs, udp and flows; never held across I/O
	addrs map[string]net.Addr
	udp   map[string][]*udpService // offered UDP services, one per port
	flows map[flowKey]*targetFlow
	peers map[string]uint32 // flowKey.peer of each client fingerprint (server)

	// control answers a control stream from the peer; set by the role
	// before the end runs.
	control func(conn *quic.Conn, st *quic.Stream)
	// pick, on a server, chooses the client connection a flow datagram of
	// an offered service goes on (nil: none serves it), keeping a flow's
	// client in *via; set before the end runs. Nil on a client, whose
	// datagrams go on their lane's connection.
	pick func(h Header, via **peerConn, lane int) *quic.Conn

	bundled                                                               atomic.Uint64
	droppedQueue, droppedLarge, droppedNoPeer, droppedUnknown, badHeaders atomic.Uint64
	droppedReceive, bundlesIn                                             atomic.Uint64 // receive queue full; QUIC datagrams received
	// Where this end holds flow datagrams: queued is from a datagram's
	// read on a local socket until its bundle is handed to quic-go (the
	// bundle's oldest datagram), sending the time quic-go takes to accept
	// a bundle, delivering from quic-go handing over a bundle until its
	// last datagram is written to its local socket.
	queued, sending, delivering                         delayHist
	rejected, enrollRefused, enrollAccepted, reconnects atomic.Uint64
}

// lane is one datagram connection's sending side: the flows hashed onto
// it queue here and its send loop bundles them into its connection (the
// end's main connection while its own is down, and always for lane 0).
type lane struct {
	index    int
	queue    chan *dgram               // flow datagrams (header and payload) to send
	conn     atomic.Pointer[quic.Conn] // the lane's own connection; nil: the main one
	bundles  atomic.Uint64
	sendWait atomic.Int64 // ns in SendDatagram
}

func newEnd(cfg Config, log *slog.Logger) *end {
	n := max(cfg.DatagramConnections, 1)
	e := &end{cfg: cfg, log: log, free: make(chan *dgram, n*(cfg.DatagramQueue+1)), svc: map[string]*serviceStats{},
		names: map[string]string{}, addrs: map[string]net.Addr{}, udp: map[string][]*udpService{}, flows: map[flowKey]*targetFlow{}, peers: map[string]uint32{}}
	for i := range n {
		e.lanes = append(e.lanes, &lane{index: i, queue: make(chan *dgram, cfg.DatagramQueue)})
	}
	for _, s := range cfg.Services {
		e.svc[s.Name] = &serviceStats{}
		e.names[s.Name] = s.Name
	}
	return e
}

// dgram is one flow datagram queued to be sent: header and payload, and
// the connection it goes on (nil: its lane's).
type dgram struct {
	b  []byte
	to *quic.Conn
	at time.Time // when it was queued
}

// getBuf returns a free datagram buffer, a new one when none is free.
func (e *end) getBuf() *dgram {
	select {
	case bp := <-e.free:
		return bp
	default:
		return &dgram{b: make([]byte, 0, maxDatagram+MaxHeader)}
	}
}

// putBuf keeps a buffer for reuse. The free list holds as many as the queue
// and the sender can hold at once, so the buffers of a busy end are made
// once and the steady path allocates nothing.
func (e *end) putBuf(bp *dgram) {
	bp.to = nil
	select {
	case e.free <- bp:
	default:
	}
}

// laneOf is the lane that carries a flow: its identifier hashed
// (Fibonacci hashing; identifiers are mostly consecutive counters).
func (e *end) laneOf(h Header) *lane {
	if len(e.lanes) == 1 {
		return e.lanes[0]
	}
	x := (h.Flow ^ uint32(len(h.Service))<<24) * 0x9e3779b1
	return e.lanes[uint64(x)*uint64(len(e.lanes))>>32]
}

// laneConn is the connection lane l sends on now: its own, or the main
// one while its own is down.
func (e *end) laneConn(l *lane) *quic.Conn {
	if c := l.conn.Load(); c != nil {
		return c
	}
	return e.conn.Load()
}

// enqueue copies header and payload into a free buffer and queues it on
// its flow's lane without blocking; a full queue drops the datagram.
func (e *end) enqueue(h Header, payload []byte, st *serviceStats) {
	e.enqueueTo(h, payload, st, nil)
}

// enqueueTo is enqueue onto connection to (nil: the lane's).
func (e *end) enqueueTo(h Header, payload []byte, st *serviceStats, to *quic.Conn) {
	if h.Len()+len(payload) > maxDatagram+MaxHeader {
		e.droppedLarge.Add(1)
		return
	}
	bp := e.getBuf()
	bp.b, bp.to, bp.at = append(h.Append(bp.b[:0]), payload...), to, time.Now()
	select {
	case e.laneOf(h).queue <- bp:
		st.bytesOut.Add(uint64(len(payload)))
	default:
		e.droppedQueue.Add(1)
		e.putBuf(bp)
	}
}

// sendLoops runs every lane's send loop until ctx ends.
func (e *end) sendLoops(ctx context.Context, wg *sync.WaitGroup) {
	for _, l := range e.lanes {
		wg.Go(func() { e.sendLoop(ctx, l) })
	}
}

// sendLoop drains lane l's queue into its connection until ctx ends. Each
// QUIC datagram is a bundle of the flow datagrams already queued when the
// loop runs (after yielding once), as many as the path's datagram size
// takes: a busy tunnel sends fewer datagrams, and an idle one never waits
// to fill a bundle.
func (e *end) sendLoop(ctx context.Context, l *lane) {
	buf := make([]byte, 0, 64*1024)
	var carry *dgram // taken from the queue but did not fit the last bundle
	var lc *quic.Conn
	limit, sent := 0, 0
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case <-ctx.Done():
				return
			case first = <-l.queue:
			}
		}
		c := first.to
		if c == nil {
			c = e.laneConn(l)
		}
		if c == nil {
			e.droppedNoPeer.Add(1)
			e.putBuf(first)
			continue
		}
		if c != lc || sent%1024 == 0 {
			lc, limit = c, datagramLimit(c)
		}
		sent++
		// Yield once so that readers already runnable queue their
		// datagrams into this bundle: with no other goroutine ready it
		// returns at once, so a lightly loaded tunnel waits for nothing.
		// Fuller bundles matter on the receiving end, where quic-go keeps
		// at most 128 received datagrams and drops the rest uncounted.
		// A datagram that leaves no room for another of its size (1,200 B
		// video) goes alone: yielding would cost it and gain nothing.
		if len(l.queue) < maxBundleEntries && 1+2*bundleEntryCost(len(first.b)) <= limit {
			runtime.Gosched()
		}
		var b []byte
		var n int
		at := first.at
		b, n, carry = e.fillBundle(l.queue, buf[:0], first, limit)
		t0 := time.Now()
		e.queued.add(t0.Sub(at))
		err := c.SendDatagram(b)
		wait := time.Since(t0)
		e.sending.add(wait)
		l.sendWait.Add(int64(wait))
		if err == nil {
			l.bundles.Add(1)
			e.bundled.Add(uint64(n))
		} else {
			var tl *quic.DatagramTooLargeError
			if errors.As(err, &tl) {
				e.droppedLarge.Add(uint64(n))
			} else {
				e.droppedNoPeer.Add(uint64(n))
			}
		}
	}
}

// fillBundle appends to dst a bundle of first and the flow datagrams in
// queue now, at most limit bytes and maxBundleEntries entries, all for
// first's connection, and returns it with its number of entries and the
// queued datagram that did not fit or goes on another connection (nil if
// none). The buffers of the datagrams bundled are freed.
func (e *end) fillBundle(queue chan *dgram, dst []byte, first *dgram, limit int) (b []byte, n int, carry *dgram) {
	to := first.to
	b = appendBundleEntry(newBundle(dst), first.b)
	e.putBuf(first)
	for n = 1; n < maxBundleEntries; n++ {
		select {
		case next := <-queue:
			if next.to != to || len(b)+bundleEntryCost(len(next.b)) > limit {
				return b, n, next
			}
			b = appendBundleEntry(b, next.b)
			e.putBuf(next)
		default:
			return b, n, nil
		}
	}
	return b, n, nil
}

// datagramLimit is the largest datagram the connection sends now. quic-go
// reports it only in the error for a datagram too large, so it is asked
// with one that no path takes; nothing is sent.
func datagramLimit(c *quic.Conn) int {
	var tl *quic.DatagramTooLargeError
	if err := c.SendDatagram(oversized[:]); errors.As(err, &tl) && tl.MaxDatagramPayloadSize > 0 {
		return int(min(tl.MaxDatagramPayloadSize, 1<<16-1))
	}
	return minDatagramLimit
}

// oversized is larger than any QUIC packet; it is never written to.
var oversized [1 << 16]byte

// minDatagramLimit is the bundle size when the connection does not say: a
// QUIC datagram frame in the smallest packet (1,200 bytes) always takes it.
const minDatagramLimit = 1100

func (e *end) stats(role string) Stats {
	st := Stats{
		Role: role, State: "down", Reconnects: e.reconnects.Load(),
		DroppedQueueFull: e.droppedQueue.Load(), DroppedReceiveQueueFull: e.droppedReceive.Load(), BundledDatagrams: e.bundled.Load(), BundlesReceived: e.bundlesIn.Load(), DroppedTooLarge: e.droppedLarge.Load(),
		DroppedNoPeer: e.droppedNoPeer.Load(), DroppedUnknown: e.droppedUnknown.Load(),
		BadHeaders: e.badHeaders.Load(), Rejected: e.rejected.Load(),
		EnrollRefused: e.enrollRefused.Load(), EnrollAccepted: e.enrollAccepted.Load(),
		Delays: &Delays{Queued: e.queued.stats(), Sending: e.sending.stats(), Delivering: e.delivering.stats()},
	}
	if c := e.conn.Load(); c != nil {
		st.State = "up"
		st.Peer = c.RemoteAddr().String()
		cs := c.ConnectionStats()
		st.RTT, st.PacketsSent, st.PacketsReceived, st.PacketsLost = cs.SmoothedRTT, cs.PacketsSent, cs.PacketsReceived, cs.PacketsLost
		st.CongestionWindow = cs.CongestionWindow
	}
	for _, l := range e.lanes {
		ds := DatagramConnStats{Index: l.index, State: "down", BundlesSent: l.bundles.Load(), SendWait: time.Duration(l.sendWait.Load())}
		st.BundlesSent += ds.BundlesSent
		st.SendWait += ds.SendWait
		if c := e.laneConn(l); c != nil {
			cs := c.ConnectionStats()
			ds.State, ds.Peer, ds.Own = "up", c.RemoteAddr().String(), l.index == 0 || l.conn.Load() == c
			ds.RTT, ds.CongestionWindow, ds.PacketsSent, ds.PacketsLost = cs.SmoothedRTT, cs.CongestionWindow, cs.PacketsSent, cs.PacketsLost
		}
		st.DatagramConnections = append(st.DatagramConnections, ds)
	}
	for _, s := range e.cfg.Services {
		c := e.svc[s.Name]
		st.Services = append(st.Services, ServiceStats{Name: s.Name, Proto: s.Proto,
			BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(), Flows: c.flows.Load(), FlowsTotal: c.flowsTotal.Load(), FlowsRefused: c.flowsRefused.Load(),
			DialsRefused: c.dialsRefused.Load(), Moves: c.moves.Load()})
	}
	return st
}

// streamConn is a QUIC stream as a net.Conn, counting its bytes.
type streamConn struct {
	*quic.Stream
	local, remote net.Addr
	st            *serviceStats
	once          sync.Once
}

func newStreamConn(s *quic.Stream, c *quic.Conn, st *serviceStats) *streamConn {
	st.flows.Add(1)
	st.flowsTotal.Add(1)
	return &streamConn{Stream: s, local: c.LocalAddr(), remote: c.RemoteAddr(), st: st}
}

func (s *streamConn) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	s.st.bytesIn.Add(uint64(n))
	return n, err
}

func (s *streamConn) Write(b []byte) (int, error) {
	n, err := s.Stream.Write(b)
	s.st.bytesOut.Add(uint64(n))
	return n, err
}

// CloseWrite ends the sending direction (a FIN on the stream).
func (s *streamConn) CloseWrite() error { return s.Stream.Close() }

// Close ends both directions.
func (s *streamConn) Close() error {
	s.once.Do(func() {
		s.st.flows.Add(-1)
		s.Stream.CancelRead(0)
		_ = s.Stream.Close()
	})
	return nil
}

func (s *streamConn) LocalAddr() net.Addr  { return s.local }
func (s *streamConn) RemoteAddr() net.Addr { return s.remote }

var _ net.Conn = (*streamConn)(nil)

// pump copies both ways until both directions ended, passing each half-close
// on, then closes both.
func pump(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
}
