package hasync

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source is a service whose state of one kind this node sends to its peer.
type Source interface {
	// Keys lists every key held now (for a snapshot).
	Keys() []string
	// Export returns a key's current state, false when the key is gone.
	Export(key string) ([]byte, bool)
}

// Sink is a service that holds the peer's state of one kind. Body aliases
// a read buffer: a Sink decodes it and keeps nothing of it.
type Sink interface {
	// Apply creates or replaces the state of key.
	Apply(key string, body []byte) error
	// Remove forgets key; an unknown key is not an error.
	Remove(key string) error
}

// Deps are the node's collaborators.
type Deps struct {
	// Logger receives the node's logs; a component attribute is added.
	// Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the node's metrics. Nil: not exported.
	Registerer prometheus.Registerer
	// Name is this node's name, sent to the peer in the link's hello.
	Name string
}

type change struct {
	kind Kind
	key  string
	at   int64 // unix nanoseconds when the change was announced
}

type sentRecord struct {
	seq uint64
	at  int64
}

// Node replicates the registered kinds of state to the peer and applies
// the peer's. Register every kind before Run; Changed is safe for
// concurrent use and never blocks.
type Node struct {
	cfg  Config
	log  *slog.Logger
	name string
	m    *metrics

	sources map[Kind]Source
	sinks   map[Kind]Sink

	queue  chan change
	kick   chan struct{} // wakes the sender for a resync
	resync atomic.Bool

	// Sender side: records written and not yet acknowledged, oldest first.
	pmu     sync.Mutex
	pending []sentRecord
	since   int64 // oldest unacknowledged change (unix ns), 0 when none
	lastLag time.Duration
	up      atomic.Bool

	// Receiver side: the keys held from the peer, per kind.
	rmu     sync.Mutex
	held    map[Kind]map[string]struct{}
	inbound net.Conn
	applied atomic.Uint64
	synced  atomic.Bool

	idMu sync.Mutex
	id   *identity
}

// New validates cfg and builds a node. It does no I/O.
func New(cfg Config, deps Deps) (*Node, error) {
	if err := cfg.Validate("ha.sync"); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	n := &Node{
		cfg:     c,
		log:     deps.Logger.With("component", "hasync"),
		name:    deps.Name,
		sources: map[Kind]Source{},
		sinks:   map[Kind]Sink{},
		queue:   make(chan change, c.Queue),
		kick:    make(chan struct{}, 1),
		held:    map[Kind]map[string]struct{}{},
	}
	m, err := newMetrics(deps.Registerer, func() float64 { return n.Lag().Seconds() })
	if err != nil {
		return nil, fmt.Errorf("hasync: metrics: %w", err)
	}
	n.m = m
	if c.Secret != "" {
		if n.id, err = newIdentity([]byte(c.Secret)); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Register names the service that exports (src) and the one that imports
// (sink) a kind of state; either may be nil. Call it before Run.
func (n *Node) Register(kind Kind, src Source, sink Sink) {
	if src != nil {
		n.sources[kind] = src
	}
	if sink != nil {
		n.sinks[kind] = sink
	}
}

// Changed announces that key of kind changed (created, updated or gone).
// It never blocks: when the queue is full the change is dropped and the
// next send is a full snapshot.
func (n *Node) Changed(kind Kind, key string) {
	now := time.Now().UnixNano()
	select {
	case n.queue <- change{kind: kind, key: key, at: now}:
		n.pmu.Lock()
		if n.since == 0 {
			n.since = now
		}
		n.pmu.Unlock()
	default:
		n.m.dropped.Inc()
		if !n.resync.Swap(true) {
			n.m.resyncOverflow.Inc()
			select {
			case n.kick <- struct{}{}:
			default:
			}
		}
	}
}

// Lag is the age of the oldest change the peer has not acknowledged, 0
// when it has every change announced so far.
func (n *Node) Lag() time.Duration {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	if n.since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, n.since))
}

// LastLag is the time from the announcement of the most recently
// acknowledged change to its acknowledgement by the peer.
func (n *Node) LastLag() time.Duration {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	return n.lastLag
}

// Connected reports whether the link to the peer is up (the snapshot may
// still be on its way).
func (n *Node) Connected() bool { return n.up.Load() }

// Synced reports whether a full snapshot of the peer's state has been
// received and applied since this node started: a returning node holds
// what its peer relays and may take its VIPs back.
func (n *Node) Synced() bool { return n.synced.Load() }

// Applied counts the records applied from the peer.
func (n *Node) Applied() uint64 { return n.applied.Load() }

// Run binds cfg.Listen and dials cfg.Peer until ctx is done, then returns
// nil.
func (n *Node) Run(ctx context.Context) error {
	if err := n.loadSecret(); err != nil {
		return err
	}
	var ln net.Listener
	if n.cfg.Listen != "" {
		var err error
		if ln, err = net.Listen("tcp", n.cfg.Listen); err != nil {
			return fmt.Errorf("hasync: listen: %w", err)
		}
	}
	return n.Serve(ctx, ln)
}

func (n *Node) loadSecret() error {
	n.idMu.Lock()
	defer n.idMu.Unlock()
	if n.id != nil {
		return nil
	}
	secret, err := n.cfg.LoadSecret()
	if err != nil {
		return err
	}
	n.id, err = newIdentity(secret)
	return err
}

// LoadSecret returns the shared secret: Secret, or the content of
// SecretFile without surrounding white space.
func (c *Config) LoadSecret() ([]byte, error) {
	if c.Secret != "" {
		return []byte(c.Secret), nil
	}
	b, err := os.ReadFile(c.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("hasync: secret_file: %w", err)
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) < MinSecret {
		return nil, fmt.Errorf("hasync: secret_file %s: %d bytes; at least %d are required", c.SecretFile, len(b), MinSecret)
	}
	return b, nil
}

// Serve accepts the peer's link on ln (nil: receive nothing) and dials
// cfg.Peer (when set) until ctx is done, then returns nil.
func (n *Node) Serve(ctx context.Context, ln net.Listener) error {
	if err := n.loadSecret(); err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if ln != nil {
		wg.Go(func() { n.accept(ctx, ln, &wg) })
		wg.Go(func() {
			<-ctx.Done()
			ln.Close()
			n.rmu.Lock()
			if n.inbound != nil {
				n.inbound.Close()
			}
			n.rmu.Unlock()
		})
	}
	if n.cfg.Peer != "" {
		wg.Go(func() { n.dial(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

func (n *Node) heartbeat() time.Duration { return n.cfg.Heartbeat.D() }

// accept serves one inbound link at a time: a new link from the peer (it
// restarted, or its old link broke without us noticing) replaces the old.
func (n *Node) accept(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n.m.linkErrors.Inc()
			time.Sleep(10 * time.Millisecond)
			continue
		}
		tc := tls.Server(c, n.id.serverConfig())
		n.rmu.Lock()
		if n.inbound != nil {
			n.inbound.Close()
		}
		n.inbound = tc
		n.rmu.Unlock()
		wg.Go(func() {
			err := n.receive(tc)
			tc.Close()
			if err != nil && ctx.Err() == nil {
				n.m.linkErrors.Inc()
				n.log.Warn("ha sync link from peer ended", "peer", c.RemoteAddr(), "err", err)
			}
		})
	}
}

// dial keeps the outbound link to the peer up.
func (n *Node) dial(ctx context.Context) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * n.heartbeat()}, Config: n.id.clientConfig()}
	failing := false
	for {
		c, err := d.DialContext(ctx, "tcp", n.cfg.Peer)
		if err == nil {
			n.log.Info("ha sync link to peer up", "peer", n.cfg.Peer)
			failing = false
			err = n.send(ctx, c)
			c.Close()
		}
		if ctx.Err() != nil {
			return
		}
		n.m.linkErrors.Inc()
		if !failing {
			n.log.Warn("ha sync link to peer down", "peer", n.cfg.Peer, "err", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(n.heartbeat()):
		}
	}
}

// send runs one outbound link: hello, snapshot, then changes as they come.
func (n *Node) send(ctx context.Context, c net.Conn) error {
	hb := n.heartbeat()
	bw := bufio.NewWriterSize(c, 64<<10)
	var buf []byte
	var seq uint64
	wd := deadline{set: c.SetWriteDeadline, hb: hb}
	write := func(f *Frame) error {
		if f.Type != FrameHello {
			seq++
			f.Seq = seq
		}
		buf = Append(buf[:0], f)
		if len(buf) > n.cfg.MaxFrame {
			return fmt.Errorf("%w: %v %q is %d bytes", ErrTooLarge, f.Kind, f.Key, len(buf))
		}
		wd.extend()
		_, err := bw.Write(buf)
		return err
	}
	flush := func() error {
		wd.extend()
		return bw.Flush()
	}
	var epoch [8]byte
	rand.Read(epoch[:])
	if err := write(&Frame{Type: FrameHello, Node: n.name, Epoch: binary.BigEndian.Uint64(epoch[:])}); err != nil {
		return err
	}

	acks := make(chan error, 1)
	go func() { acks <- n.readAcks(c) }()
	defer func() {
		c.Close()
		<-acks
		n.up.Store(false)
		n.pmu.Lock()
		n.pending = n.pending[:0]
		n.pmu.Unlock()
	}()
	n.up.Store(true)

	record := func(ch change) error {
		if len(ch.key) > MaxKey {
			n.m.dropped.Inc()
			return nil
		}
		f := Frame{Type: FrameRecord, Kind: ch.kind, Key: ch.key, Op: OpDelete}
		src := n.sources[ch.kind]
		if src == nil {
			n.m.dropped.Inc()
			return nil
		}
		if body, ok := src.Export(ch.key); ok {
			f.Op, f.Body = OpPut, body
		}
		if err := write(&f); err != nil {
			if errors.Is(err, ErrTooLarge) {
				n.m.dropped.Inc()
				n.log.Warn("ha sync record dropped", "err", err)
				return nil
			}
			return err
		}
		n.m.sent.Inc()
		n.pmu.Lock()
		n.pending = append(n.pending, sentRecord{seq: seq, at: ch.at})
		n.pmu.Unlock()
		return nil
	}
	snapshot := func() error {
		now := time.Now().UnixNano()
		for {
			select {
			case <-n.queue:
				continue
			default:
			}
			break
		}
		if err := write(&Frame{Type: FrameSnapshotBegin}); err != nil {
			return err
		}
		for kind, src := range n.sources {
			for _, k := range src.Keys() {
				if err := record(change{kind: kind, key: k, at: now}); err != nil {
					return err
				}
			}
		}
		if err := write(&Frame{Type: FrameSnapshotEnd}); err != nil {
			return err
		}
		n.pmu.Lock()
		n.pending = append(n.pending, sentRecord{seq: seq, at: now})
		n.pmu.Unlock()
		return flush()
	}

	n.m.resyncConnect.Inc()
	n.resync.Store(false)
	if err := snapshot(); err != nil {
		return err
	}
	ping := time.NewTicker(hb)
	defer ping.Stop()
	for {
		if n.resync.Swap(false) {
			if err := snapshot(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-acks:
			acks <- err // for the deferred wait
			return err
		case <-n.kick:
		case ch := <-n.queue:
			if err := record(ch); err != nil {
				return err
			}
			for more := true; more; {
				select {
				case ch := <-n.queue:
					if err := record(ch); err != nil {
						return err
					}
				default:
					more = false
				}
			}
			if err := flush(); err != nil {
				return err
			}
		case <-ping.C:
			if err := write(&Frame{Type: FramePing}); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// deadline keeps a connection's read or write deadline three heartbeats
// ahead. It moves the deadline at most once per half heartbeat, not once
// per frame: each move resets a runtime timer, which a burst of thousands
// of records would pay for every record.
type deadline struct {
	set  func(time.Time) error
	hb   time.Duration
	next time.Time // when the deadline is moved again
}

func (d *deadline) extend() {
	now := time.Now()
	if now.Before(d.next) {
		return
	}
	d.set(now.Add(3 * d.hb))
	d.next = now.Add(d.hb / 2)
}

// readAcks reads the peer's acknowledgements until the link fails; a link
// that carries no acknowledgement for three heartbeats has failed.
func (n *Node) readAcks(c net.Conn) error {
	br := bufio.NewReader(c)
	var buf []byte
	for {
		c.SetReadDeadline(time.Now().Add(3 * n.heartbeat()))
		f, err := readFrame(br, &buf, n.cfg.MaxFrame)
		if err != nil {
			return err
		}
		if f.Type != FrameAck {
			return fmt.Errorf("%w: type %d from the receiver", ErrFrame, f.Type)
		}
		n.acked(f.Seq)
	}
}

func (n *Node) acked(seq uint64) {
	now := time.Now().UnixNano()
	n.pmu.Lock()
	defer n.pmu.Unlock()
	i := 0
	for i < len(n.pending) && n.pending[i].seq <= seq {
		i++
	}
	if i > 0 {
		n.lastLag = time.Duration(now - n.pending[i-1].at)
		n.pending = n.pending[:copy(n.pending, n.pending[i:])]
	}
	switch {
	case len(n.pending) > 0:
		n.since = n.pending[0].at
	case len(n.queue) == 0 && !n.resync.Load():
		n.since = 0
	}
}

// readFrame reads one frame into *buf (grown as needed, at most max).
func readFrame(br *bufio.Reader, buf *[]byte, max int) (Frame, error) {
	hdr, err := br.Peek(4)
	if err != nil {
		return Frame{}, err
	}
	size, err := FrameLen(hdr, max)
	if err != nil {
		return Frame{}, err
	}
	if cap(*buf) < size {
		*buf = make([]byte, size)
	}
	b := (*buf)[:size]
	if _, err := io.ReadFull(br, b); err != nil {
		return Frame{}, err
	}
	f, _, err := Parse(b, max)
	return f, err
}

// receive applies one inbound link's frames and acknowledges them.
func (n *Node) receive(c net.Conn) error {
	hb := n.heartbeat()
	br := bufio.NewReaderSize(c, 64<<10)
	var buf, out []byte
	c.SetReadDeadline(time.Now().Add(3 * hb))
	f, err := readFrame(br, &buf, n.cfg.MaxFrame)
	if err != nil {
		return err
	}
	if f.Type != FrameHello {
		return fmt.Errorf("%w: link starts with type %d", ErrFrame, f.Type)
	}
	n.log.Info("ha sync link from peer up", "node", f.Node, "addr", c.RemoteAddr())
	var seen map[Kind]map[string]struct{}
	lastAck := time.Now()
	rd := deadline{set: c.SetReadDeadline, hb: hb}
	wd := deadline{set: c.SetWriteDeadline, hb: hb}
	for {
		rd.extend()
		f, err := readFrame(br, &buf, n.cfg.MaxFrame)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch f.Type {
		case FrameSnapshotBegin:
			seen = map[Kind]map[string]struct{}{}
		case FrameRecord:
			n.apply(&f)
			if seen != nil && f.Op == OpPut {
				if seen[f.Kind] == nil {
					seen[f.Kind] = map[string]struct{}{}
				}
				seen[f.Kind][f.Key] = struct{}{}
			}
		case FrameSnapshotEnd:
			n.prune(seen)
			seen = nil
			n.synced.Store(true)
		case FramePing:
		default:
			return fmt.Errorf("%w: type %d from the sender", ErrFrame, f.Type)
		}
		// Acknowledge when caught up with what arrived, and at least twice
		// a heartbeat while a long snapshot keeps the buffer full: the
		// sender drops a link that acknowledges nothing for three.
		if br.Buffered() == 0 || time.Since(lastAck) > hb/2 {
			lastAck = time.Now()
			out = Append(out[:0], &Frame{Type: FrameAck, Seq: f.Seq})
			wd.extend()
			if _, err := c.Write(out); err != nil {
				return err
			}
		}
	}
}

func (n *Node) apply(f *Frame) {
	n.m.received.Inc()
	sink := n.sinks[f.Kind]
	if sink == nil {
		n.m.applyErrors.Inc()
		return
	}
	var err error
	n.rmu.Lock()
	held := n.held[f.Kind]
	if held == nil {
		held = map[string]struct{}{}
		n.held[f.Kind] = held
	}
	if f.Op == OpPut {
		held[f.Key] = struct{}{}
	} else {
		delete(held, f.Key)
	}
	n.rmu.Unlock()
	if f.Op == OpPut {
		err = sink.Apply(f.Key, f.Body)
	} else {
		err = sink.Remove(f.Key)
	}
	if err != nil {
		n.m.applyErrors.Inc()
		n.log.Debug("ha sync record refused", "kind", f.Kind, "key", f.Key, "err", err)
		return
	}
	n.applied.Add(1)
}

// pruner is a Sink that tells a key the peer no longer holds after a
// snapshot (it restarted and lost it) from one the peer removed.
type pruner interface {
	Prune(key string) error
}

// prune removes what the peer held before a snapshot and no longer holds,
// by Prune where the sink has it.
func (n *Node) prune(seen map[Kind]map[string]struct{}) {
	type gone struct {
		kind Kind
		key  string
	}
	var list []gone
	n.rmu.Lock()
	for kind, keys := range n.held {
		for k := range keys {
			if _, ok := seen[kind][k]; !ok {
				list = append(list, gone{kind, k})
				delete(keys, k)
			}
		}
	}
	n.rmu.Unlock()
	for _, g := range list {
		if sink := n.sinks[g.kind]; sink != nil {
			remove := sink.Remove
			if p, ok := sink.(pruner); ok {
				remove = p.Prune
			}
			if err := remove(g.key); err != nil {
				n.m.applyErrors.Inc()
			}
		}
	}
}
