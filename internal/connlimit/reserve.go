package connlimit

import (
	"sync"
	"time"
)

// DefaultKeepFree is the number of descriptors a Reserve keeps free when
// NewReserve is given none.
const DefaultKeepFree = 256

// Count refresh bounds: the open descriptors are counted again when the
// last count is older than refreshAge, or nearAge when the estimate is
// close to the limit; never more often than 20 times the last count took,
// so that counting a huge table costs at most a few per cent of a core.
const (
	refreshAge = 100 * time.Millisecond
	nearAge    = 5 * time.Millisecond
)

// Reserve keeps file descriptors free for what must answer when outside
// clients have taken everything else (the management API, the store, log
// files). Listeners ask it before admitting a connection; it answers from
// a count of the process's open descriptors (Linux: /proc/self/fd) taken
// at most every 100 ms, plus the connections admitted since, against the
// soft RLIMIT_NOFILE. When the default share is more than a quarter of the
// limit, every share is scaled down in proportion (the default to a
// quarter), so a small limit still leaves room for connections and a
// listener with a smaller share still answers after the others refuse. Where
// descriptors cannot be counted, it admits everything.
type Reserve struct {
	keep int

	mu     sync.Mutex
	open   int           // descriptors open at the last count
	limit  int           // RLIMIT_NOFILE at the last count
	since  int           // admitted since the last count
	at     time.Time     // of the last count
	took   time.Duration // how long the last count took
	broken bool          // counting is not supported here
	buf    []byte        // directory read buffer, reused
	count  func(buf []byte) (open, limit int, err error)
}

// NewReserve returns a Reserve whose default share is keep descriptors
// (DefaultKeepFree when keep <= 0).
func NewReserve(keep int) *Reserve {
	if keep <= 0 {
		keep = DefaultKeepFree
	}
	return &Reserve{keep: keep, count: countDescriptors, buf: make([]byte, 16<<10)}
}

// Keep returns the default share.
func (r *Reserve) Keep() int { return r.keep }

// Allow reports whether one more descriptor may be taken while keeping
// keep (the default share when keep <= 0) free, and counts it taken. fd is
// the number of the descriptor just opened for it, or -1: descriptors are
// handed out lowest first, so all below fd are open, which bounds the
// count from below between two counts.
func (r *Reserve) Allow(keep, fd int) bool {
	if keep <= 0 {
		keep = r.keep
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken {
		return true
	}
	over := func() bool { return max(r.open+r.since, fd+1)+r.share(keep) >= r.limit }
	age := time.Since(r.at)
	if r.at.IsZero() || (over() && age >= max(nearAge, 20*r.took)) || age >= max(refreshAge, 20*r.took) {
		start := time.Now()
		open, limit, err := r.count(r.buf)
		switch {
		case err == errUnsupported:
			r.broken = true
			return true
		case err != nil:
			// Not even the count's own descriptor could be opened: the
			// table is full.
			open = max(r.limit, 1)
			limit = open
		}
		r.open, r.limit, r.since, r.at, r.took = open, limit, 0, start, time.Since(start)
	}
	if over() {
		return false
	}
	r.since++
	return true
}

// share is keep, scaled down when the default share is more than a
// quarter of the limit, so that the default then keeps a quarter free and
// a smaller share stays proportionally smaller.
func (r *Reserve) share(keep int) int {
	if 4*r.keep > r.limit {
		return keep * r.limit / (4 * r.keep)
	}
	return keep
}
