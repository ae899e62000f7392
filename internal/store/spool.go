package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Spool writes history (calls, registration events, events) and the audit
// log to the store and, when the store is unavailable, keeps the records in
// memory and retries them in order until it takes them: a store lost for a
// while loses no history.
//
// Policy:
//   - A write is tried at once (unless records already wait, to keep their
//     order). Success, or ErrExists (the record is already there, e.g. a
//     retry after a lost reply), completes it.
//   - Only availability failures are queued: errors wrapping ErrUnavailable
//     or a deadline that passed. Any other error is a bad record, which a
//     retry would not fix; it goes back to the caller (AddEvent, which has no
//     error result, logs it) and never blocks the queue.
//   - The queue holds at most maxPending records. Past that, the oldest
//     history record (call, registration event, event) is dropped and
//     counted in Dropped. Audit entries are never dropped: when the queue is
//     full of nothing but audit entries, AppendAudit fails with
//     ErrUnavailable so the caller can refuse the change it was recording,
//     and a new history record is dropped (and counted) instead.
//   - Run retries the head of the queue with exponential backoff (0.5 s up
//     to 10 s). A queued record that later fails for a reason other than
//     availability is logged, counted in Failed, and skipped.
type Spool struct {
	st         Store
	log        *slog.Logger
	maxPending int
	timeout    time.Duration // per attempt

	mu       sync.Mutex
	queue    []spooled
	seq      uint64 // last assigned sequence number
	inflight uint64 // sequence number Run is writing now; 0 for none
	wake     chan struct{}
	dropped  atomic.Uint64
	failed   atomic.Uint64
}

type spooled struct {
	seq   uint64
	audit bool
	what  string
	write func(context.Context) error
}

// writeTimeout bounds one attempt; a database that does not answer in time
// counts as unavailable.
const writeTimeout = 2 * time.Second

// NewSpool wraps st; maxPending bounds the records kept while the store is
// away (0 means 100,000).
func NewSpool(st Store, log *slog.Logger, maxPending int) *Spool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if maxPending <= 0 {
		maxPending = 100000
	}
	return &Spool{st: st, log: log, maxPending: maxPending, timeout: writeTimeout, wake: make(chan struct{}, 1)}
}

// AddCall records an ended call.
func (s *Spool) AddCall(ctx context.Context, c CallRecord) error {
	return s.write(ctx, false, "call "+c.ID, func(ctx context.Context) error { return s.st.AddCall(ctx, c) })
}

// AddRegistrationEvent records a registration step.
func (s *Spool) AddRegistrationEvent(ctx context.Context, r RegistrationEvent) error {
	return s.write(ctx, false, "registration event "+r.AOR, func(ctx context.Context) error { return s.st.AddRegistrationEvent(ctx, r) })
}

// AddEvent records an event. It has no error result: a record the store
// refuses outright is logged.
func (s *Spool) AddEvent(e Event) {
	if err := s.write(context.Background(), false, "event", func(ctx context.Context) error { return s.st.AddEvent(ctx, e) }); err != nil {
		s.log.Error("event not recorded", "err", err, "message", e.Message)
	}
}

// AppendAudit records an audit entry. It fails only when the store refuses
// the entry outright, or when the store is away and the queue is full of
// audit entries already.
func (s *Spool) AppendAudit(ctx context.Context, e AuditEntry) error {
	return s.write(ctx, true, "audit "+e.Action, func(ctx context.Context) error { return s.st.AppendAudit(ctx, e) })
}

// retryable reports an availability failure, worth queueing.
func retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// write tries the store at once unless records are already waiting (keeping
// their order); an availability failure queues the record. It returns nil
// once the record is written or queued.
func (s *Spool) write(ctx context.Context, audit bool, what string, f func(context.Context) error) error {
	if s.Pending() == 0 {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		err := f(wctx)
		cancel()
		switch {
		case err == nil, errors.Is(err, ErrExists):
			return nil
		case !retryable(err):
			return err
		}
		s.log.Warn("store unavailable; history queued for retry", "record", what, "err", err)
	}
	s.mu.Lock()
	if len(s.queue) >= s.maxPending {
		if !s.evictLocked() {
			s.mu.Unlock()
			if audit {
				return fmt.Errorf("store: %s: spool full of audit entries: %w", what, ErrUnavailable)
			}
			s.dropped.Add(1)
			s.log.Warn("history spool full of audit entries; record dropped", "record", what, "dropped", s.dropped.Load())
			return nil
		}
	}
	s.seq++
	s.queue = append(s.queue, spooled{seq: s.seq, audit: audit, what: what, write: f})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// evictLocked drops the oldest history record that Run is not writing at
// this moment; it reports whether there was one.
func (s *Spool) evictLocked() bool {
	for i, e := range s.queue {
		if e.audit || e.seq == s.inflight {
			continue
		}
		if i == 0 {
			s.queue[0] = spooled{}
			s.queue = s.queue[1:]
		} else {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
		}
		if n := s.dropped.Add(1); n == 1 || n%1000 == 0 {
			s.log.Warn("history spool full; oldest records dropped", "dropped", n, "max_pending", s.maxPending)
		}
		return true
	}
	return false
}

// Pending is how many records wait for the store.
func (s *Spool) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Dropped is how many records were lost to the bound.
func (s *Spool) Dropped() uint64 { return s.dropped.Load() }

// Failed is how many queued records the store later refused outright.
func (s *Spool) Failed() uint64 { return s.failed.Load() }

// Healthy reports whether nothing is waiting for the store.
func (s *Spool) Healthy() bool { return s.Pending() == 0 }

// Run retries queued records with backoff until ctx ends; then it makes one
// last attempt to flush. It returns nil.
func (s *Spool) Run(ctx context.Context) error {
	const first, most = 500 * time.Millisecond, 10 * time.Second
	backoff := first
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	for {
		if s.flush(ctx) {
			backoff = first
			select {
			case <-ctx.Done():
				return nil
			case <-s.wake:
			}
			continue
		}
		timer.Reset(backoff)
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			s.flush(fctx)
			cancel()
			if n := s.Pending(); n > 0 {
				s.log.Error("history records not written at shutdown", "pending", n)
			}
			return nil
		case <-timer.C:
		}
		backoff = min(backoff*2, most)
	}
}

// flush writes queued records in order; it reports whether the queue emptied.
func (s *Spool) flush(ctx context.Context) bool {
	for {
		if ctx.Err() != nil {
			return false
		}
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return true
		}
		e := s.queue[0]
		s.inflight = e.seq
		s.mu.Unlock()

		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		err := e.write(wctx)
		cancel()
		if err != nil && retryable(err) {
			s.mu.Lock()
			s.inflight = 0
			s.mu.Unlock()
			return false
		}
		if err != nil && !errors.Is(err, ErrExists) {
			s.failed.Add(1)
			s.log.Error("queued history record refused by the store; skipped", "record", e.what, "err", err)
		}
		s.mu.Lock()
		s.inflight = 0
		// Eviction never takes the in-flight record, so it is still the head.
		if len(s.queue) > 0 && s.queue[0].seq == e.seq {
			s.queue[0] = spooled{}
			s.queue = s.queue[1:]
		}
		n := len(s.queue)
		s.mu.Unlock()
		if n == 0 {
			s.log.Info("history spool drained")
		}
	}
}

// SetTimeout sets the per-attempt timeout (tests).
func (s *Spool) SetTimeout(d time.Duration) { s.timeout = d }
