package media

import (
	"sync"
	"sync/atomic"
)

// slotChunk is how many slots a table allocates at once.
const slotChunk = 1024

// slots is a table of pointers indexed by a small number, read without
// locks (the packet path) and written under mu (call setup): chunks are
// allocated on first use and kept, so a reader only loads two pointers.
type slots[T any] struct {
	mu     sync.Mutex
	free   []uint32
	next   uint32
	chunks []atomic.Pointer[[slotChunk]atomic.Pointer[T]]
}

func newSlots[T any](chunks int) *slots[T] {
	return &slots[T]{chunks: make([]atomic.Pointer[[slotChunk]atomic.Pointer[T]], chunks)}
}

// get returns the value in slot i, or nil.
func (s *slots[T]) get(i uint32) *T {
	if int(i/slotChunk) >= len(s.chunks) {
		return nil
	}
	c := s.chunks[i/slotChunk].Load()
	if c == nil {
		return nil
	}
	return c[i%slotChunk].Load()
}

// put stores v in a free slot and returns its number; false when the
// table is full.
func (s *slots[T]) put(v *T) (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var i uint32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		if int(s.next) >= slotChunk*len(s.chunks) {
			return 0, false
		}
		i = s.next
		s.next++
	}
	c := s.chunks[i/slotChunk].Load()
	if c == nil {
		c = new([slotChunk]atomic.Pointer[T])
		s.chunks[i/slotChunk].Store(c)
	}
	c[i%slotChunk].Store(v)
	return i, true
}

// release empties slot i when it still holds v, and frees it.
func (s *slots[T]) release(i uint32, v *T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(i/slotChunk) >= len(s.chunks) {
		return
	}
	if c := s.chunks[i/slotChunk].Load(); c != nil && c[i%slotChunk].CompareAndSwap(v, nil) {
		s.free = append(s.free, i)
	}
}
