package media

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"sync"
)

// portPool hands out even/odd port pairs of one interface's range in
// random order, so that the relay port of one call says nothing about the
// next one's (ports taken in sequence are easy to guess for anyone who
// wants to inject media before the real party latches).
type portPool struct {
	mu     sync.Mutex
	base   int     // first even port
	free   []int32 // indices of free pairs, in no particular order
	pos    []int32 // pos[i] is pair i's index in free, -1 when taken
	rng    *rand.Rand
	lo, hi int
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
	p := &portPool{base: base, free: make([]int32, n), pos: make([]int32, n), rng: rand.New(rand.NewChaCha8(seed)), lo: lo, hi: hi}
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
// sockets). Pairs try refuses stay free for the next attempt (another
// process may hold them for now). The pool is locked only to pick and
// return pairs, never while try runs: binding costs system calls, and
// the relay allocations of all other calls would wait for them.
func (p *portPool) take(try func(port int) error) (int, error) {
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
		k, last := p.rng.IntN(len(p.free)), len(p.free)-1
		p.swap(k, last)
		i := p.free[last]
		p.free = p.free[:last]
		p.pos[i] = -1
		p.mu.Unlock()
		port := p.base + 2*int(i)
		if err := try(port); err != nil {
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

// reserve takes a given even port out of the free pairs; false when it is
// outside the range or already taken.
func (p *portPool) reserve(port int) bool {
	i := (port - p.base) / 2
	p.mu.Lock()
	defer p.mu.Unlock()
	if port%2 != 0 || port < p.base || i >= len(p.pos) || p.pos[i] < 0 {
		return false
	}
	at := int(p.pos[i])
	last := len(p.free) - 1
	p.swap(at, last)
	p.free = p.free[:last]
	p.pos[i] = -1
	return true
}

func (p *portPool) put(port int) {
	i := (port - p.base) / 2
	p.mu.Lock()
	if i >= 0 && i < len(p.pos) && p.pos[i] == -1 {
		p.pos[i] = int32(len(p.free))
		p.free = append(p.free, int32(i))
	}
	p.mu.Unlock()
}

func (p *portPool) available() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}
