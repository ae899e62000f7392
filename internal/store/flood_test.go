package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/sqlite"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFloodOfRejectionsIsBounded: 40,000 rejected REGISTERs and 20,000
// rejected guest INVITEs from a few hundred sources become a few rows per
// source that count them all, and history stays within history.max_rows
// however much legitimate traffic follows.
func TestFloodOfRejectionsIsBounded(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clk := &clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	sp := store.NewSpool(st, nil, 100000)
	const maxRows = 1000
	sp.SetPolicy(store.HistoryPolicy{MaxAge: 90 * 24 * time.Hour, MaxRows: maxRows, FoldWindow: 10 * time.Second, Now: clk.Now})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sp.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	const regs, calls, regSources, callSources = 40000, 20000, 250, 100
	for i := range regs {
		sp.AddRegistrationEvent(ctx, store.RegistrationEvent{Time: clk.Now(), Protocol: "sip", AOR: fmt.Sprintf("sip:guess%d@corp", i),
			Source: fmt.Sprintf("198.51.100.%d:%d", i%regSources, 5060+i%1000), Transport: "udp", Kind: "rejected", Reason: "404 Not Found"})
	}
	for i := range calls {
		sp.AddCall(ctx, store.CallRecord{ID: fmt.Sprint("guest-", i), Protocol: "sip", CallType: "guest", From: "sip:x@evil", To: fmt.Sprint("sip:", i, "@corp"),
			SourceAddr: fmt.Sprintf("203.0.113.%d:5060", i%callSources), StartedAt: clk.Now(), EndedAt: clk.Now(), EndedBy: "portico", Status: 403,
			Disposition: "policy: destination not allowed"})
	}
	clk.add(11 * time.Second) // the fold windows close
	sum := func() (rows int, total int64, callRows int, callTotal int64) {
		rs, _ := st.RegistrationEvents(ctx, store.Query{Limit: 10000})
		for _, r := range rs {
			rows++
			total += max(r.Count, 1)
		}
		cs, _ := st.Calls(ctx, store.Query{Limit: 10000})
		for _, c := range cs {
			callRows++
			callTotal += max(c.Count, 1)
		}
		return
	}
	waitUntil(t, "the folded rows", func() bool { _, n, _, m := sum(); return n == regs && m == calls })
	rows, _, callRows, _ := sum()
	t.Logf("%d rejected REGISTERs in %d rows, %d rejected INVITEs in %d rows", regs, rows, calls, callRows)
	if rows > 2*regSources || callRows > 2*callSources {
		t.Errorf("%d registration rows for %d sources, %d call rows for %d sources: want at most two per source", rows, regSources, callRows, callSources)
	}

	// Traffic that is not folded is bounded by history.max_rows.
	for i := range 5000 {
		sp.AddRegistrationEvent(ctx, store.RegistrationEvent{Time: clk.Now().Add(time.Duration(i) * time.Millisecond), Protocol: "sip",
			AOR: fmt.Sprintf("sip:user%d@corp", i), Source: "192.0.2.1:5060", Kind: "registered", Expires: 120})
	}
	count := func() int {
		rs, _ := st.RegistrationEvents(ctx, store.Query{Limit: 10000})
		return len(rs)
	}
	// Pruning after every tenth of the cap keeps it within 110% while the
	// traffic lasts; the periodic prune then trims to the cap.
	waitUntil(t, fmt.Sprintf("registration history within %d rows (now %d)", maxRows*11/10, count()), func() bool { return count() <= maxRows*11/10 })
	clk.add(10*time.Minute + time.Second)
	waitUntil(t, fmt.Sprintf("registration history within %d rows (now %d)", maxRows, count()), func() bool { return count() <= maxRows })
	if rs, _ := st.RegistrationEvents(ctx, store.Query{Limit: 1}); len(rs) != 1 || rs[0].AOR != "sip:user4999@corp" {
		t.Errorf("the newest row did not survive pruning: %+v", rs)
	}
}
