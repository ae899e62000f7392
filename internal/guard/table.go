package guard

import (
	"hash/maphash"
	"sync"
)

const (
	numShards   = 16
	evictSample = 8
)

// entry is one source's (or user's) buckets. levels are drained to last.
type entry struct {
	levels   [numKinds]float32
	last     int64 // unix nanoseconds of the last drain
	seen     int64 // unix nanoseconds of the last event
	offences uint16
}

// drain empties each bucket by what its rate let out since e.last.
func (e *entry) drain(now int64, b *[numKinds]bucket) {
	dt := float64(now - e.last)
	if dt <= 0 {
		return
	}
	e.last = now
	for k := range e.levels {
		if e.levels[k] == 0 {
			continue
		}
		l := float64(e.levels[k]) - dt*b[k].rate
		if l < 0 || b[k].rate == 0 {
			l = 0
		}
		e.levels[k] = float32(l)
	}
}

// score is the fullest bucket's fill ratio, plus the offences that make a
// repeat offender worth remembering.
func (e *entry) score(b *[numKinds]bucket) float64 {
	var s float64
	for k, l := range e.levels {
		if l > 0 && b[k].cap > 0 {
			s = max(s, float64(l)/b[k].cap)
		}
	}
	return s + float64(e.offences)
}

type shard[K comparable] struct {
	mu sync.Mutex
	m  map[K]*entry
}

// table is a bounded, sharded map of entries. A full shard evicts the
// lowest-scoring of a sample of its entries (map iteration order is
// random), so new sources cannot push out the ones near their limit.
type table[K comparable] struct {
	seed   maphash.Seed
	shards [numShards]shard[K]
}

func newTable[K comparable]() *table[K] {
	t := &table[K]{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = map[K]*entry{}
	}
	return t
}

func (t *table[K]) shard(k K) *shard[K] {
	return &t.shards[maphash.Comparable(t.seed, k)%numShards]
}

// add drains k's buckets to now, adds one to bucket kind and calls f with
// the entry under the shard lock. It reports whether an entry was evicted
// to make room.
func (t *table[K]) add(k K, kind Kind, now int64, b *[numKinds]bucket, limit int, f func(e *entry)) (evicted bool) {
	sh := t.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[k]
	if e == nil {
		per := max(1, limit/numShards)
		if len(sh.m) >= per {
			evicted = sh.evict(now, b)
		}
		e = &entry{last: now}
		sh.m[k] = e
	}
	e.drain(now, b)
	e.seen = now
	e.levels[kind]++
	f(e)
	return evicted
}

// evict removes the lowest-scoring entry of a sample.
func (sh *shard[K]) evict(now int64, b *[numKinds]bucket) bool {
	var (
		victim K
		low    = -1.0
		n      int
	)
	for k, e := range sh.m {
		e.drain(now, b)
		if s := e.score(b); low < 0 || s < low {
			victim, low = k, s
		}
		if n++; n == evictSample {
			break
		}
	}
	if low < 0 {
		return false
	}
	delete(sh.m, victim)
	return true
}

// prune removes entries whose buckets are empty and that have not been
// seen for longer than forget (repeat offenders are remembered that long).
func (t *table[K]) prune(now int64, b *[numKinds]bucket, forget int64) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			e.drain(now, b)
			if e.score(b)-float64(e.offences) == 0 && (e.offences == 0 || now-e.seen > forget) {
				delete(sh.m, k)
			}
		}
		sh.mu.Unlock()
	}
}

func (t *table[K]) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
