package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeStore records history writes; it can be down (ErrUnavailable), hang
// until the deadline, refuse chosen records outright, or block one write.
type fakeStore struct {
	Store // nil: only the history methods are used

	mu      sync.Mutex
	down    bool
	hang    bool
	reject  map[string]bool
	written []string
	seen    map[string]bool
	block   map[string]chan struct{} // write of this record waits for the channel
	entered chan string
}

func newFake() *fakeStore {
	return &fakeStore{reject: map[string]bool{}, seen: map[string]bool{}, block: map[string]chan struct{}{}, entered: make(chan string, 100)}
}

func (f *fakeStore) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *fakeStore) put(ctx context.Context, key string) error {
	f.mu.Lock()
	ch := f.block[key]
	f.mu.Unlock()
	if ch != nil {
		f.entered <- key
		<-ch
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.hang:
		f.mu.Unlock()
		<-ctx.Done()
		f.mu.Lock()
		return fmt.Errorf("fake: %w", ctx.Err())
	case f.down:
		return fmt.Errorf("fake: %w", ErrUnavailable)
	case f.reject[key]:
		return errors.New("fake: bad record")
	case f.seen[key]:
		return fmt.Errorf("fake %s: %w", key, ErrExists)
	}
	f.seen[key] = true
	f.written = append(f.written, key)
	return nil
}

func (f *fakeStore) AddCall(ctx context.Context, c CallRecord) error { return f.put(ctx, c.ID) }
func (f *fakeStore) AddRegistrationEvent(ctx context.Context, r RegistrationEvent) error {
	return f.put(ctx, r.AOR)
}
func (f *fakeStore) AddEvent(ctx context.Context, e Event) error { return f.put(ctx, e.Message) }
func (f *fakeStore) AppendAudit(ctx context.Context, e AuditEntry) error {
	return f.put(ctx, e.Action)
}

func (f *fakeStore) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.written)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func runSpool(t *testing.T, sp *Spool) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sp.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func TestSpoolWritesThroughWhenUp(t *testing.T) {
	f := newFake()
	sp := NewSpool(f, nil, 10)
	ctx := context.Background()
	if err := sp.AddCall(ctx, CallRecord{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	sp.AddEvent(Event{Message: "e1"})
	if err := sp.AddRegistrationEvent(ctx, RegistrationEvent{AOR: "r1"}); err != nil {
		t.Fatal(err)
	}
	if err := sp.AppendAudit(ctx, AuditEntry{Action: "a1"}); err != nil {
		t.Fatal(err)
	}
	// A duplicate (a retry whose first reply was lost) is not an error.
	if err := sp.AddCall(ctx, CallRecord{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.got(), []string{"c1", "e1", "r1", "a1"}; !slices.Equal(got, want) {
		t.Errorf("written %v, want %v", got, want)
	}
	if !sp.Healthy() || sp.Pending() != 0 {
		t.Errorf("healthy %v pending %d", sp.Healthy(), sp.Pending())
	}
}

func TestSpoolQueuesWhileDownAndDrainsInOrder(t *testing.T) {
	f := newFake()
	sp := NewSpool(f, nil, 100)
	ctx := context.Background()
	sp.AddCall(ctx, CallRecord{ID: "before"})
	f.setDown(true)
	stop := runSpool(t, sp)
	defer stop()
	var want []string
	for i := range 10 {
		id := fmt.Sprint("c", i)
		if err := sp.AddCall(ctx, CallRecord{ID: id}); err != nil {
			t.Fatalf("AddCall while down: %v", err)
		}
		want = append(want, id)
	}
	if err := sp.AppendAudit(ctx, AuditEntry{Action: "audit-while-down"}); err != nil {
		t.Fatalf("AppendAudit while down: %v", err)
	}
	want = append(want, "audit-while-down")
	if sp.Healthy() || sp.Pending() != 11 {
		t.Fatalf("while down: healthy %v pending %d, want false 11", sp.Healthy(), sp.Pending())
	}
	time.Sleep(700 * time.Millisecond) // at least one failed retry
	f.setDown(false)
	waitFor(t, "the spool to drain", sp.Healthy)
	if got := f.got(); !slices.Equal(got, append([]string{"before"}, want...)) {
		t.Errorf("written %v", got)
	}
	if sp.Dropped() != 0 || sp.Failed() != 0 {
		t.Errorf("dropped %d failed %d", sp.Dropped(), sp.Failed())
	}
}

func TestSpoolReturnsBadRecords(t *testing.T) {
	f := newFake()
	f.reject["bad"] = true
	sp := NewSpool(f, nil, 10)
	if err := sp.AddCall(context.Background(), CallRecord{ID: "bad"}); err == nil {
		t.Fatal("a record the store refuses outright was accepted")
	}
	if sp.Pending() != 0 {
		t.Errorf("bad record queued (%d pending); it would block the queue", sp.Pending())
	}
}

func TestSpoolSkipsRecordRefusedOnRetry(t *testing.T) {
	f := newFake()
	f.setDown(true)
	sp := NewSpool(f, nil, 10)
	ctx := context.Background()
	for _, id := range []string{"a", "bad", "b"} {
		sp.AddCall(ctx, CallRecord{ID: id})
	}
	f.mu.Lock()
	f.down, f.reject["bad"] = false, true
	f.mu.Unlock()
	stop := runSpool(t, sp)
	defer stop()
	waitFor(t, "drain", sp.Healthy)
	if got := f.got(); !slices.Equal(got, []string{"a", "b"}) || sp.Failed() != 1 {
		t.Errorf("written %v, failed %d; want [a b], 1", got, sp.Failed())
	}
}

func TestSpoolBoundDropsHistoryNeverAudit(t *testing.T) {
	f := newFake()
	f.setDown(true)
	sp := NewSpool(f, nil, 3)
	ctx := context.Background()
	steps := []struct {
		name    string
		add     func() error
		wantErr bool
		dropped uint64
	}{
		{name: "A1", add: func() error { return sp.AppendAudit(ctx, AuditEntry{Action: "A1"}) }},
		{name: "C1", add: func() error { return sp.AddCall(ctx, CallRecord{ID: "C1"}) }},
		{name: "C2", add: func() error { return sp.AddCall(ctx, CallRecord{ID: "C2"}) }},
		{name: "C3 evicts C1", add: func() error { return sp.AddCall(ctx, CallRecord{ID: "C3"}) }, dropped: 1},
		{name: "A2 evicts C2", add: func() error { return sp.AppendAudit(ctx, AuditEntry{Action: "A2"}) }, dropped: 2},
		{name: "A3 evicts C3", add: func() error { return sp.AppendAudit(ctx, AuditEntry{Action: "A3"}) }, dropped: 3},
		{name: "A4 refused", add: func() error { return sp.AppendAudit(ctx, AuditEntry{Action: "A4"}) }, wantErr: true, dropped: 3},
		{name: "C4 dropped", add: func() error { return sp.AddCall(ctx, CallRecord{ID: "C4"}) }, dropped: 4},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := st.add()
			if st.wantErr != (err != nil) {
				t.Fatalf("err = %v, want error %v", err, st.wantErr)
			}
			if err != nil && !errors.Is(err, ErrUnavailable) {
				t.Errorf("err = %v, want ErrUnavailable", err)
			}
			if sp.Dropped() != st.dropped || sp.Pending() > 3 {
				t.Errorf("dropped %d pending %d; want %d, <= 3", sp.Dropped(), sp.Pending(), st.dropped)
			}
		})
	}
	f.setDown(false)
	stop := runSpool(t, sp)
	defer stop()
	waitFor(t, "drain", sp.Healthy)
	if got := f.got(); !slices.Equal(got, []string{"A1", "A2", "A3"}) {
		t.Errorf("written %v, want the three audit entries in order", got)
	}
}

// The record Run is writing is never the one the bound evicts, so it is
// neither lost nor counted as dropped, and Run removes exactly it.
func TestSpoolEvictionSparesRecordInFlight(t *testing.T) {
	f := newFake()
	f.setDown(true)
	sp := NewSpool(f, nil, 2)
	ctx := context.Background()
	sp.AddCall(ctx, CallRecord{ID: "h1"})
	sp.AddCall(ctx, CallRecord{ID: "h2"})
	release := make(chan struct{})
	f.mu.Lock()
	f.down = false
	f.block["h1"] = release
	f.mu.Unlock()
	stop := runSpool(t, sp)
	defer stop()
	<-f.entered                           // Run is writing h1
	sp.AddCall(ctx, CallRecord{ID: "h3"}) // full: evicts h2, not h1
	close(release)
	waitFor(t, "drain", sp.Healthy)
	if got := f.got(); !slices.Equal(got, []string{"h1", "h3"}) || sp.Dropped() != 1 {
		t.Errorf("written %v dropped %d; want [h1 h3], 1", got, sp.Dropped())
	}
}

func TestSpoolHungStoreCountsAsUnavailable(t *testing.T) {
	f := newFake()
	f.hang = true
	sp := NewSpool(f, nil, 10)
	sp.timeout = 50 * time.Millisecond
	if err := sp.AddCall(context.Background(), CallRecord{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	if sp.Pending() != 1 {
		t.Fatalf("pending %d after a write timed out, want 1", sp.Pending())
	}
	f.mu.Lock()
	f.hang = false
	f.mu.Unlock()
	stop := runSpool(t, sp)
	waitFor(t, "drain", sp.Healthy)
	stop()
	if got := f.got(); !slices.Equal(got, []string{"x"}) {
		t.Errorf("written %v", got)
	}
}

func TestSpoolFlushesAtShutdown(t *testing.T) {
	f := newFake()
	f.setDown(true)
	sp := NewSpool(f, nil, 10)
	stop := runSpool(t, sp)
	sp.AddCall(context.Background(), CallRecord{ID: "last"})
	f.setDown(false)
	stop() // before any retry timer fires
	if got := f.got(); !slices.Equal(got, []string{"last"}) || !sp.Healthy() {
		t.Errorf("written %v pending %d after shutdown", got, sp.Pending())
	}
}

// Many writers while the store flaps: every record is written exactly once.
func TestSpoolConcurrentFlapping(t *testing.T) {
	f := newFake()
	sp := NewSpool(f, nil, 100000)
	stop := runSpool(t, sp)
	defer stop()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if i%50 == 0 {
					f.setDown(i%100 == 0)
				}
				if err := sp.AddCall(context.Background(), CallRecord{ID: fmt.Sprint(g, "-", i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	f.setDown(false)
	sp.AddEvent(Event{Message: "kick"})
	waitFor(t, "drain", sp.Healthy)
	got := f.got()
	if len(got) != 8*200+1 || sp.Dropped() != 0 {
		t.Fatalf("%d written, %d dropped; want %d, 0", len(got), sp.Dropped(), 8*200+1)
	}
	// Each writer's own records keep their order.
	for g := range 8 {
		prefix := fmt.Sprint(g, "-")
		n := 0
		for _, id := range got {
			if len(id) > len(prefix) && id[:len(prefix)] == prefix {
				if id != fmt.Sprint(g, "-", n) {
					t.Fatalf("writer %d: got %s at position %d", g, id, n)
				}
				n++
			}
		}
	}
}

// TestSpoolFoldsSpoofedSourcesPastTheBound: past maxFolds sources, further
// sources share one fold per reason, so a flood from ever new addresses
// still writes a bounded number of rows.
func TestSpoolFoldsSpoofedSourcesPastTheBound(t *testing.T) {
	f := newFake()
	sp := NewSpool(f, nil, 100000)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	sp.SetPolicy(HistoryPolicy{FoldWindow: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	const sources = maxFolds + 5000
	for round := range 2 {
		for i := range sources {
			sp.AddRegistrationEvent(ctx, RegistrationEvent{AOR: fmt.Sprint("r", round, "-", i), Source: fmt.Sprintf("10.%d.%d.%d:5060", i>>16, i>>8&255, i&255), Kind: "rejected", Reason: "404"})
		}
	}
	if n := len(f.got()); n != maxFolds+1 {
		t.Fatalf("%d rows written for %d rejections from %d sources; want one per tracked source and one for the rest (%d)", n, 2*sources, sources, maxFolds+1)
	}
	now = now.Add(time.Minute)
	sp.sweep(false)
	stop := runSpool(t, sp)
	defer stop()
	waitFor(t, "the folded rows", func() bool { return len(f.got()) == 2*maxFolds+2 })
}

// batchFake is fakeStore with an AddCalls method that counts its batches.
type batchFake struct {
	*fakeStore
	batches [][]string
}

func (f *batchFake) AddCalls(ctx context.Context, cs []CallRecord) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return fmt.Errorf("fake: %w", ErrUnavailable)
	}
	var ids []string
	for _, c := range cs {
		if err := f.put(ctx, c.ID); err != nil {
			return err
		}
		ids = append(ids, c.ID)
	}
	f.mu.Lock()
	f.batches = append(f.batches, ids)
	f.mu.Unlock()
	return nil
}

// TestAddCallsQueuedAsOne: calls batched while records wait in the queue
// join it as one entry and reach the store in one AddCalls, after what was
// queued before them, when the store is back.
func TestAddCallsQueuedAsOne(t *testing.T) {
	f := &batchFake{fakeStore: newFake()}
	sp := NewSpool(f, nil, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	defer func() { cancel(); <-done }()
	f.setDown(true)
	go func() { done <- sp.Run(ctx) }()
	answered := func(id string) CallRecord { return CallRecord{ID: id, AnsweredAt: time.Now(), EndedBy: "caller"} }
	if err := sp.AddCall(ctx, answered("c0")); err != nil {
		t.Fatal(err)
	}
	if err := sp.AddCalls(ctx, []CallRecord{answered("c1"), answered("c2"), answered("c3")}); err != nil {
		t.Fatal(err)
	}
	if n := sp.Pending(); n != 2 {
		t.Fatalf("pending %d, want 2 (one call, one batch)", n)
	}
	f.setDown(false)
	waitFor(t, "the queue to drain", func() bool { return sp.Pending() == 0 })
	if got := f.got(); !slices.Equal(got, []string{"c0", "c1", "c2", "c3"}) {
		t.Errorf("written %v, want c0..c3 in order", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.batches) != 1 || len(f.batches[0]) != 3 {
		t.Errorf("batches %v, want one of 3", f.batches)
	}
}
