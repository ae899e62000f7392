package store

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Spool writes history (calls, registration events, events) to the store
// and, when the store cannot take them, keeps them in memory and retries
// until it can: a store lost for a while loses no history. The queue is
// bounded; past maxPending the oldest records are dropped and counted.
type Spool struct {
	st         Store
	log        *slog.Logger
	maxPending int

	mu      sync.Mutex
	queue   []func(context.Context) error
	wake    chan struct{}
	dropped atomic.Uint64
}

// NewSpool wraps st; maxPending bounds the records kept while the store is away.
func NewSpool(st Store, log *slog.Logger, maxPending int) *Spool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if maxPending <= 0 {
		maxPending = 100000
	}
	return &Spool{st: st, log: log, maxPending: maxPending, wake: make(chan struct{}, 1)}
}

// AddCall records an ended call.
func (s *Spool) AddCall(ctx context.Context, c CallRecord) error {
	return s.write(ctx, func(ctx context.Context) error { return s.st.AddCall(ctx, c) })
}

// AddRegistrationEvent records a registration step.
func (s *Spool) AddRegistrationEvent(ctx context.Context, r RegistrationEvent) error {
	return s.write(ctx, func(ctx context.Context) error { return s.st.AddRegistrationEvent(ctx, r) })
}

// AddEvent records an event.
func (s *Spool) AddEvent(e Event) {
	s.write(context.Background(), func(ctx context.Context) error { return s.st.AddEvent(ctx, e) })
}

// write tries the store at once unless records are already waiting (keeping
// their order); a failure other than a duplicate queues the record. It
// returns nil once the record is written or queued.
func (s *Spool) write(ctx context.Context, f func(context.Context) error) error {
	s.mu.Lock()
	waiting := len(s.queue) > 0
	s.mu.Unlock()
	if !waiting {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err := f(wctx)
		cancel()
		if err == nil || errors.Is(err, ErrExists) {
			return nil
		}
		s.log.Warn("history write failed; queued for retry", "err", err)
	}
	s.mu.Lock()
	if len(s.queue) >= s.maxPending {
		s.queue = s.queue[1:]
		s.dropped.Add(1)
	}
	s.queue = append(s.queue, f)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Pending is how many records wait for the store.
func (s *Spool) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Dropped is how many records were lost to the bound.
func (s *Spool) Dropped() uint64 { return s.dropped.Load() }

// Healthy reports whether nothing is waiting.
func (s *Spool) Healthy() bool { return s.Pending() == 0 }

// Run retries queued records with backoff until ctx ends; then it makes one
// last attempt to flush.
func (s *Spool) Run(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for {
		if s.flush(ctx) {
			backoff = 500 * time.Millisecond
			select {
			case <-ctx.Done():
				return nil
			case <-s.wake:
			}
			continue
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.flush(fctx)
			cancel()
			if n := s.Pending(); n > 0 {
				s.log.Error("history records not written at shutdown", "pending", n)
			}
			return nil
		case <-time.After(backoff):
		case <-s.wake:
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// flush writes queued records in order; it reports whether the queue emptied.
func (s *Spool) flush(ctx context.Context) bool {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return true
		}
		f := s.queue[0]
		s.mu.Unlock()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err := f(wctx)
		cancel()
		if err != nil && !errors.Is(err, ErrExists) {
			return false
		}
		s.mu.Lock()
		s.queue = s.queue[1:]
		s.mu.Unlock()
	}
}
