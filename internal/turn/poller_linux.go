package turn

import (
	"net"
	"net/netip"
	"sync"

	"github.com/portico-edge/portico/internal/batchio"
)

// pollBatch is the number of slots of a poller's outgoing batch per
// listener socket: the datagrams of every relay socket that was ready in
// one epoll_wait, for the clients behind one listener socket, leave in
// one sendmmsg call.
const pollBatch = 32

// pollEvents is the number of ready sockets one epoll_wait returns at
// most.
const pollEvents = 128

// slowQueue is how many datagrams for the engine (peers without a
// permission or channel known to the data path) wait for it per relay
// socket; more are dropped, as a full socket buffer would.
const slowQueue = 64

// relayPoller reads many relay sockets from one goroutine: one epoll_wait
// reports the sockets with datagrams, each is read with one recvmmsg, and
// what goes to clients is grouped by listener socket and sent with one
// sendmmsg each. At the tens of datagrams per second of an audio or video
// call this wakes one goroutine per batch of ready sockets, instead of one
// per datagram and socket (each relay socket read by its own goroutine).
//
// The sockets stay in Go's network poller too (for writes); a registered
// socket's reads belong to the relayPoller: the engine's goroutine for
// that allocation waits on the socket's slow queue instead
// (relayPacketConn.ReadFrom). Close removes a socket (closing it removes
// it from the epoll set too).
type relayPoller struct {
	set  *batchio.EpollSet
	done chan struct{}

	mu     sync.Mutex
	nextID uint32
	conns  cow[uint32, *relayPacketConn]

	// Owned by the poller's goroutine.
	in   *batchio.Batch
	outs []pollOut
}

// pollOut is the pending batch to the clients behind one listener socket.
type pollOut struct {
	u *net.UDPConn
	w *batchio.Conn
	b *batchio.Batch
	n int
}

// newRelayPoller starts a poller; stop ends it.
func newRelayPoller() (*relayPoller, error) {
	set, err := batchio.NewEpollSet(pollEvents)
	if err != nil {
		return nil, err
	}
	p := &relayPoller{set: set, done: make(chan struct{}), nextID: batchio.EpollStopID, in: batchio.NewBatch(relayBatch)}
	go p.run()
	return p, nil
}

// stop ends the poller's goroutine and waits for it.
func (p *relayPoller) stop() {
	p.set.Stop()
	<-p.done
	p.set.Close()
}

// add registers c: from now on the poller reads it. It is called before
// the engine starts reading c.
func (p *relayPoller) add(c *relayPacketConn) error {
	rc, err := c.UDPConn.SyscallConn()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		p.nextID++
		if _, used := p.conns.load()[p.nextID]; p.nextID != batchio.EpollStopID && !used {
			break
		}
	}
	id := p.nextID
	c.pollID, c.rc = id, rc
	c.slow = make(chan slowDatagram, slowQueue)
	c.pollRead = func(fd uintptr) bool {
		c.pollN, c.pollErr = p.in.RecvFD(int(fd), 0)
		return true // never wait: the poller waits in epoll_wait
	}
	p.conns.store(id, c)
	if err := p.set.Add(rc, id); err != nil {
		p.conns.deleteIf(id, func(*relayPacketConn) bool { return true })
		return err
	}
	c.poller.Store(p)
	select {
	case <-c.gone: // closed meanwhile, perhaps before Close saw the poller
		p.remove(c)
	default:
	}
	return nil
}

// remove forgets c; closing its socket takes it out of the epoll set.
func (p *relayPoller) remove(c *relayPacketConn) {
	p.conns.deleteIf(c.pollID, func(x *relayPacketConn) bool { return x == c })
}

func (p *relayPoller) run() {
	defer close(p.done)
	for {
		events, err := p.set.Wait()
		if err != nil {
			return
		}
		conns := p.conns.load()
		for _, ev := range events {
			id := uint32(ev.Fd)
			if id == batchio.EpollStopID {
				return
			}
			if c, ok := conns[id]; ok {
				p.read(c)
			}
		}
		p.flush()
	}
}

// read takes one batch from c: datagrams with a channel or a permission
// go to the outgoing batches, the others to the engine. A socket with
// more waiting stays ready (level-triggered) for the next epoll_wait.
func (p *relayPoller) read(c *relayPacketConn) {
	c.pollN, c.pollErr = 0, nil
	if err := c.rc.Read(c.pollRead); err != nil || c.pollErr != nil {
		return // closed (the engine's goroutine learns it from gone), or nothing after all
	}
	for i := 0; i < c.pollN; i++ {
		m := &p.in.Msgs[i]
		m.N = min(m.N, maxRelayDatagram)
		c.h.fromPeer(m.N)
		if c.relayVia(p, m) {
			continue
		}
		select {
		case c.slow <- slowDatagram{data: append([]byte(nil), m.Data()...), from: m.Addr}:
		default:
			c.h.a.m.engineQueueDrops.Inc()
		}
	}
}

// queue implements outQueue: the next slot of the batch to the listener
// socket of w, sending that batch first when it is full. The poller writes
// with its own batchio.Conn per listener socket (w is the relay socket's).
func (p *relayPoller) queue(w *batchio.Conn, client netip.AddrPort) *batchio.Message {
	u := w.UDPConn()
	var o *pollOut
	for i := range p.outs {
		if p.outs[i].u == u {
			o = &p.outs[i]
			break
		}
	}
	if o == nil {
		if len(p.outs) >= maxPollOuts { // listeners come and go with reloads
			p.flush()
			p.outs = p.outs[:0]
		}
		pw, _ := batchio.NewConn(u) // fails only for a closed socket, and then the send does
		p.outs = append(p.outs, pollOut{u: u, w: pw, b: batchio.NewBatch(pollBatch)})
		o = &p.outs[len(p.outs)-1]
	}
	if o.n == len(o.b.Msgs) {
		_, _ = o.w.WriteBatch(o.b, o.n)
		o.n = 0
	}
	m := &o.b.Msgs[o.n]
	m.Addr = client
	o.n++
	return m
}

// maxPollOuts bounds the listener sockets a poller keeps a batch for.
const maxPollOuts = 64

// flush sends every pending batch. A send error (the listener closed, a
// full buffer) drops them, as UDP would.
func (p *relayPoller) flush() {
	for i := range p.outs {
		if o := &p.outs[i]; o.n > 0 {
			_, _ = o.w.WriteBatch(o.b, o.n)
			o.n = 0
		}
	}
}
