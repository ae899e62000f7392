package media

import (
	"fmt"
	"sync"
)

// portPool hands out even/odd port pairs of one interface's range.
type portPool struct {
	mu     sync.Mutex
	base   int // first even port
	used   []bool
	free   int
	cursor int
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
	return &portPool{base: base, used: make([]bool, n), free: n, lo: lo, hi: hi}
}

// take reserves a free pair whose even port try accepts (binding sockets).
// Pairs try refuses stay free for the next attempt (another process may hold
// them for now).
func (p *portPool) take(try func(port int) error) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var lastErr error
	tried := 0
	for tried < len(p.used) && p.free > 0 {
		i := p.cursor
		p.cursor = (p.cursor + 1) % len(p.used)
		if p.used[i] {
			continue
		}
		tried++
		port := p.base + 2*i
		if err := try(port); err != nil {
			lastErr = err
			continue
		}
		p.used[i] = true
		p.free--
		return port, nil
	}
	if lastErr != nil {
		return 0, fmt.Errorf("%w %d-%d (last bind error: %v)", ErrNoPorts, p.lo, p.hi, lastErr)
	}
	return 0, fmt.Errorf("%w %d-%d", ErrNoPorts, p.lo, p.hi)
}

func (p *portPool) put(port int) {
	i := (port - p.base) / 2
	p.mu.Lock()
	if i >= 0 && i < len(p.used) && p.used[i] {
		p.used[i] = false
		p.free++
	}
	p.mu.Unlock()
}

func (p *portPool) available() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.free
}
