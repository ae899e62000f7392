package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
//
// History is bounded by a HistoryPolicy (SetPolicy; the zero policy bounds
// nothing):
//   - Rejections (a registration event of kind "rejected", a call Portico
//     ended before it was answered) are folded per source address and
//     reason over FoldWindow: the first is written at once, the repeats in
//     the window are counted in memory and written as one row whose Count
//     says how many it stands for when the window closes. At most maxFolds
//     sources are tracked at once; past that, further sources share one
//     fold per reason, so a flood from spoofed addresses folds as well.
//   - Run prunes history older than MaxAge and past MaxRows rows per table
//     every PruneEvery and after every batch of written records, so a
//     flood is trimmed while it lasts, not only at the next interval.
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

	policy    HistoryPolicy
	folds     map[foldKey]*fold // under mu
	written   atomic.Int64      // records written since the last prune
	lastPrune time.Time         // Run's goroutine only
}

// HistoryPolicy bounds the history a Spool writes.
type HistoryPolicy struct {
	// MaxAge: history older than this is deleted. 0: kept however old.
	MaxAge time.Duration
	// MaxRows caps each history table (calls, registration events, events);
	// the oldest rows go. 0: no cap.
	MaxRows int
	// FoldWindow is how long repeated rejections from one source fold into
	// one row. 0: every rejection is its own row.
	FoldWindow time.Duration
	// PruneEvery is how often Run prunes besides after write batches.
	// Default 10 minutes.
	PruneEvery time.Duration
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// maxFolds bounds the sources folded one by one.
const maxFolds = 10000

type foldKey struct{ table, source, what string }

// fold is an open window of repeats of one rejection.
type fold struct {
	until time.Time
	extra int64                                                   // repeats since the row written at the start
	emit  func(count int64) (string, func(context.Context) error) // writes the latest repeat standing for count
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
	return &Spool{st: st, log: log, maxPending: maxPending, timeout: writeTimeout, wake: make(chan struct{}, 1), folds: map[foldKey]*fold{}}
}

// SetPolicy sets how history is bounded; call it before Run.
func (s *Spool) SetPolicy(p HistoryPolicy) {
	if p.PruneEvery <= 0 {
		p.PruneEvery = 10 * time.Minute
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	s.policy = p
}

func (s *Spool) now() time.Time {
	if s.policy.Now == nil {
		return time.Now()
	}
	return s.policy.Now()
}

// sourceHost is the address without its port: a scanner's ports change.
func sourceHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// folded reports whether a rejection was counted into an open window
// instead of written; if not, a new window starts and the caller writes it.
func (s *Spool) folded(k foldKey, emit func(int64) (string, func(context.Context) error)) bool {
	if s.policy.FoldWindow <= 0 {
		return false
	}
	now := s.now()
	s.mu.Lock()
	if _, tracked := s.folds[k]; !tracked && len(s.folds) >= maxFolds {
		k.source = "*" // every further source shares one window per reason
	}
	f := s.folds[k]
	if f != nil && now.Before(f.until) {
		f.extra++
		f.emit = emit
		s.mu.Unlock()
		return true
	}
	var due func(int64) (string, func(context.Context) error)
	var n int64
	if f != nil && f.extra > 0 {
		due, n = f.emit, f.extra
	}
	s.folds[k] = &fold{until: now.Add(s.policy.FoldWindow)}
	s.mu.Unlock()
	if due != nil {
		what, w := due(n)
		s.enqueue(false, what, w)
	}
	return false
}

// sweep writes the folds whose window closed (all of them when all is set).
func (s *Spool) sweep(all bool) {
	now := s.now()
	type row struct {
		emit func(int64) (string, func(context.Context) error)
		n    int64
	}
	var due []row
	s.mu.Lock()
	for k, f := range s.folds {
		if all || !now.Before(f.until) {
			if f.extra > 0 {
				due = append(due, row{f.emit, f.extra})
			}
			delete(s.folds, k)
		}
	}
	s.mu.Unlock()
	for _, r := range due {
		what, w := r.emit(r.n)
		s.enqueue(false, what, w)
	}
}

// pruneBatchRows is how many written records start a prune before the
// interval: a tenth of the cap, within 100..10,000.
func (p HistoryPolicy) pruneBatchRows() int64 {
	if p.MaxRows <= 0 {
		return 10000
	}
	return int64(min(10000, max(100, p.MaxRows/10)))
}

// maybePrune applies MaxAge and MaxRows when the interval passed or a batch
// was written since the last prune. Run's goroutine only.
func (s *Spool) maybePrune(ctx context.Context) {
	p := s.policy
	if p.MaxAge <= 0 && p.MaxRows <= 0 {
		return
	}
	now := s.now()
	if !s.lastPrune.IsZero() && now.Sub(s.lastPrune) < p.PruneEvery && s.written.Load() < p.pruneBatchRows() {
		return
	}
	s.lastPrune = now
	s.written.Store(0)
	var before time.Time
	if p.MaxAge > 0 {
		before = now.Add(-p.MaxAge)
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	n, err := s.st.PruneHistory(pctx, before, p.MaxRows)
	cancel()
	switch {
	case err != nil:
		s.log.Warn("history retention: prune failed; retried later", "err", err)
	case n > 0:
		s.log.Info("history retention: old rows deleted", "rows", n, "max_age", p.MaxAge, "max_rows", p.MaxRows)
	}
}

// AddCall records an ended call. A call Portico refused (ended by
// "portico" before an answer) folds with its repeats.
func (s *Spool) AddCall(ctx context.Context, c CallRecord) error {
	if c.AnsweredAt.IsZero() && c.EndedBy == "portico" {
		src := sourceHost(c.SourceAddr)
		if s.folded(foldKey{"calls", src, fmt.Sprint(c.Status, " ", c.Disposition)}, func(n int64) (string, func(context.Context) error) {
			c.Count = n
			return fmt.Sprintf("%d refused calls from %s", n, src), func(ctx context.Context) error { return s.st.AddCall(ctx, c) }
		}) {
			return nil
		}
	}
	return s.write(ctx, false, "call "+c.ID, func(ctx context.Context) error { return s.st.AddCall(ctx, c) })
}

// AddCalls records ended calls as AddCall does each, in one write when the
// store can take many at once (an AddCalls method). While records wait in
// the queue the batch joins it as one entry, written in one go in its turn,
// so a store that fell behind once under load does not go on taking one
// transaction per call. A batch the store refuses for any reason other than
// availability is written call by call (a record already there, from a
// retry after a lost reply, is not an error), so the batch changes the cost,
// never the outcome. A queued batch counts as one entry of the queue's bound.
func (s *Spool) AddCalls(ctx context.Context, cs []CallRecord) error {
	batch := make([]CallRecord, 0, len(cs))
	var errs []error
	for _, c := range cs {
		if c.AnsweredAt.IsZero() && c.EndedBy == "portico" {
			errs = append(errs, s.AddCall(ctx, c)) // folds with its repeats
			continue
		}
		batch = append(batch, c)
	}
	b, ok := s.st.(interface {
		AddCalls(context.Context, []CallRecord) error
	})
	if !ok || len(batch) < 2 {
		for _, c := range batch {
			errs = append(errs, s.AddCall(ctx, c))
		}
		return errors.Join(errs...)
	}
	write := func(ctx context.Context) error {
		err := b.AddCalls(ctx, batch)
		if err == nil {
			// The spool counts the batch as one record written; the
			// prune batch counts rows.
			for range batch[1:] {
				s.noteWritten()
			}
		}
		if err == nil || retryable(err) {
			return err
		}
		var one []error
		for _, c := range batch {
			if err := s.st.AddCall(ctx, c); err != nil && !errors.Is(err, ErrExists) {
				if retryable(err) {
					return err // the rest in the batch's next turn
				}
				one = append(one, err)
			}
		}
		return errors.Join(one...)
	}
	what := fmt.Sprintf("%d calls from %s", len(batch), batch[0].ID)
	if err := s.write(ctx, false, what, write); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// AddRegistrationEvent records a registration step. A rejection folds with
// its repeats.
func (s *Spool) AddRegistrationEvent(ctx context.Context, r RegistrationEvent) error {
	if r.Kind == "rejected" {
		src := sourceHost(r.Source)
		if s.folded(foldKey{"registration_events", src, r.Reason}, func(n int64) (string, func(context.Context) error) {
			r.Count = n
			return fmt.Sprintf("%d rejected registrations from %s", n, src), func(ctx context.Context) error { return s.st.AddRegistrationEvent(ctx, r) }
		}) {
			return nil
		}
	}
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
			s.noteWritten()
			return nil
		case !retryable(err):
			return err
		}
		s.log.Warn("store unavailable; history queued for retry", "record", what, "err", err)
	}
	return s.enqueue(audit, what, f)
}

// noteWritten counts a written record towards the next prune, and wakes
// Run when a batch is complete.
func (s *Spool) noteWritten() {
	if s.written.Add(1) == s.policy.pruneBatchRows() && (s.policy.MaxRows > 0 || s.policy.MaxAge > 0) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// enqueue queues a record for Run, within maxPending.
func (s *Spool) enqueue(audit bool, what string, f func(context.Context) error) error {
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

// Run retries queued records with backoff until ctx ends; then it writes
// the open folds and makes one last attempt to flush. It also closes fold
// windows and prunes (HistoryPolicy). It returns nil.
func (s *Spool) Run(ctx context.Context) error {
	const first, most = 500 * time.Millisecond, 10 * time.Second
	backoff := first
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	s.maybePrune(ctx)
	for {
		ok := s.flush(ctx)
		var wake <-chan struct{}
		var retry <-chan time.Time
		if ok {
			backoff = first
			wake = s.wake
		} else {
			timer.Reset(backoff)
			retry = timer.C
		}
		select {
		case <-ctx.Done():
			s.sweep(true)
			fctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			s.flush(fctx)
			cancel()
			if n := s.Pending(); n > 0 {
				s.log.Error("history records not written at shutdown", "pending", n)
			}
			return nil
		case <-wake:
			if ok {
				s.maybePrune(ctx)
			}
		case <-retry:
			backoff = min(backoff*2, most)
		case <-tick.C:
			s.sweep(false)
			if ok {
				s.maybePrune(ctx)
			}
		}
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
		} else {
			s.noteWritten()
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
