package media

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// portPool hands out even/odd port pairs of one interface's range in
// random order, so that the relay port of one call says nothing about the
// next one's (ports taken in sequence are easy to guess for anyone who
// wants to inject media before the real party latches).
//
// A released pair keeps its sockets open (idle, parked: see park) so that
// the next stream that takes it skips creating, configuring and binding
// them. Once at least minIdle pairs are parked, a take picks at random
// among them; until then, among all free pairs. So a pair just released
// is one of at least minIdle candidates for the next take (it is never
// handed out next for certain), and the sockets kept open follow the
// number of calls at once rather than the size of the range: at most
// minIdle pairs more than were in use at the busiest moment, and never
// more than one set per pair of the range.
type portPool struct {
	mu     sync.Mutex
	base   int     // first even port
	free   []int32 // indices of free pairs, in no particular order
	pos    []int32 // pos[i] is pair i's index in free, -1 when taken
	rng    *rand.Rand
	lo, hi int
	// idle holds the parked sockets of free pairs, by pair index; ilist
	// lists those pairs in no particular order.
	idle    map[int32]idleEntry
	ilist   []int32
	minIdle int
	// closed: the relay closed; sockets given back are closed at once.
	closed bool
	// idleGauge counts the parked sockets; nil: not counted.
	idleGauge prometheus.Gauge
}

type idleEntry struct {
	pair idlePair
	at   int // index in ilist
}

// maxMinIdle caps minIdle: with a quarter of a large range parked, takes
// would keep thousands of sockets open for no gain. It is also the fewest
// ports a stream's port is drawn from once enough are parked, so it stays
// large enough that a port is hard to guess before the stream latches.
const maxMinIdle = 1024

// idlePair is the parked RTP socket of a pair (port) and, when it had
// one, its RTCP socket (port+1).
type idlePair struct {
	sock [2]idleSock
}

type idleSock struct {
	s    sysSock
	open bool
}

// n returns how many sockets ip holds.
func (ip *idlePair) n() int {
	n := 0
	for i := range ip.sock {
		if ip.sock[i].open {
			n++
		}
	}
	return n
}

// close closes the sockets ip still holds.
func (ip *idlePair) close() {
	for i := range ip.sock {
		if ip.sock[i].open {
			closeSock(ip.sock[i].s)
			ip.sock[i].open = false
		}
	}
}

// use hands out socket i (0 RTP, 1 RTCP) ready for a new stream; false
// when ip holds none or it could not be readied (it is closed then).
func (ip *idlePair) use(i int) (sysSock, bool) {
	if !ip.sock[i].open {
		return sysSock{}, false
	}
	ip.sock[i].open = false
	s := ip.sock[i].s
	if unpark(s) != nil {
		closeSock(s)
		return sysSock{}, false
	}
	return s, true
}

func newPortPool(lo, hi int) *portPool {
	base := lo
	if base%2 == 1 {
		base++
	}
	n := 0
	if hi >= base+1 {
		n = (hi - base + 1) / 2
	}
	var seed [32]byte
	crand.Read(seed[:]) // never fails (crypto/rand panics instead)
	p := &portPool{base: base, free: make([]int32, n), pos: make([]int32, n), rng: rand.New(rand.NewChaCha8(seed)), lo: lo, hi: hi, idle: map[int32]idleEntry{}, minIdle: min(maxMinIdle, max(n/4, 1))}
	for i := range p.free {
		p.free[i], p.pos[i] = int32(i), int32(i)
	}
	return p
}

// swap exchanges the entries at free[a] and free[b].
func (p *portPool) swap(a, b int) {
	p.free[a], p.free[b] = p.free[b], p.free[a]
	p.pos[p.free[a]], p.pos[p.free[b]] = int32(a), int32(b)
}

// take reserves a random free pair whose even port try accepts (binding
// sockets). try receives the pair's parked sockets, if it has any, and
// owns them: it uses or closes them. Pairs try refuses stay free for the
// next attempt (another process may hold them for now). The pool is
// locked only to pick and return pairs, never while try runs: binding
// costs system calls, and the relay allocations of all other calls would
// wait for them.
func (p *portPool) take(try func(port int, idle idlePair) error) (int, error) {
	var lastErr error
	// refused are the pairs try refused this time, kept out of free
	// until the take ends so that it tries each pair once.
	var refused []int
	defer func() {
		for _, port := range refused {
			p.put(port)
		}
	}()
	for {
		p.mu.Lock()
		if len(p.free) == 0 {
			p.mu.Unlock()
			break
		}
		var i int32
		if len(p.ilist) >= p.minIdle {
			i = p.ilist[p.rng.IntN(len(p.ilist))]
		} else {
			i = p.free[p.rng.IntN(len(p.free))]
		}
		p.unfree(i)
		idle := p.takeIdle(i)
		p.mu.Unlock()
		port := p.base + 2*int(i)
		if err := try(port, idle); err != nil {
			lastErr = err
			refused = append(refused, port)
			continue
		}
		return port, nil
	}
	if lastErr != nil {
		return 0, fmt.Errorf("%w %d-%d (last bind error: %v)", ErrNoPorts, p.lo, p.hi, lastErr)
	}
	return 0, fmt.Errorf("%w %d-%d", ErrNoPorts, p.lo, p.hi)
}

// unfree takes free pair i out of the free pairs. p.mu is held.
func (p *portPool) unfree(i int32) {
	last := len(p.free) - 1
	p.swap(int(p.pos[i]), last)
	p.free = p.free[:last]
	p.pos[i] = -1
}

// takeIdle removes pair i's parked sockets from the pool. p.mu is held.
func (p *portPool) takeIdle(i int32) idlePair {
	e, ok := p.idle[i]
	if !ok {
		return idlePair{}
	}
	delete(p.idle, i)
	last := len(p.ilist) - 1
	if moved := p.ilist[last]; moved != i {
		p.ilist[e.at] = moved
		m := p.idle[moved]
		m.at = e.at
		p.idle[moved] = m
	}
	p.ilist = p.ilist[:last]
	if p.idleGauge != nil {
		p.idleGauge.Sub(float64(e.pair.n()))
	}
	return e.pair
}

// reserve takes a given even port out of the free pairs, with its parked
// sockets (the caller owns them); false when it is outside the range or
// already taken.
func (p *portPool) reserve(port int) (idlePair, bool) {
	i := (port - p.base) / 2
	p.mu.Lock()
	defer p.mu.Unlock()
	if port%2 != 0 || port < p.base || i >= len(p.pos) || p.pos[i] < 0 {
		return idlePair{}, false
	}
	p.unfree(int32(i))
	return p.takeIdle(int32(i)), true
}

// put returns a pair that holds no open socket.
func (p *portPool) put(port int) { p.putIdle(port, idlePair{}) }

// putIdle returns a pair with its parked sockets, kept for the next take
// of the pair. They are closed instead when the pool is closed or the pair
// was not taken.
func (p *portPool) putIdle(port int, idle idlePair) {
	i := (port - p.base) / 2
	p.mu.Lock()
	if i < 0 || i >= len(p.pos) || p.pos[i] != -1 {
		p.mu.Unlock()
		idle.close()
		return
	}
	p.pos[i] = int32(len(p.free))
	p.free = append(p.free, int32(i))
	keep := !p.closed && idle.n() > 0
	if keep {
		p.idle[int32(i)] = idleEntry{pair: idle, at: len(p.ilist)}
		p.ilist = append(p.ilist, int32(i))
		if p.idleGauge != nil {
			p.idleGauge.Add(float64(idle.n()))
		}
	}
	p.mu.Unlock()
	if !keep {
		idle.close()
	}
}

// close closes every parked socket; sockets given back later are closed
// at once.
func (p *portPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle, p.ilist = map[int32]idleEntry{}, nil
	for _, e := range idle {
		if p.idleGauge != nil {
			p.idleGauge.Sub(float64(e.pair.n()))
		}
	}
	p.mu.Unlock()
	for _, e := range idle {
		e.pair.close()
	}
}

// idleSockets returns how many parked sockets the pool holds.
func (p *portPool) idleSockets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.idle {
		n += e.pair.n()
	}
	return n
}

func (p *portPool) available() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}
