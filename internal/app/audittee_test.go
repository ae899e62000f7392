package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// callCounter is a stand-in store (no real one counts its statements)
// that counts how call records reach it.
type callCounter struct {
	store.Store
	one, batches, inBatches int
}

func (c *callCounter) AddCall(ctx context.Context, r store.CallRecord) error {
	c.one++
	return nil
}

func (c *callCounter) AddCalls(ctx context.Context, rs []store.CallRecord) error {
	c.batches++
	c.inBatches += len(rs)
	return nil
}

// TestAuditTeeKeepsCallBatches: the history spool writes a batch of call
// records in one store call through the audit tee, as it does on the
// store beneath (one transaction instead of one per call).
func TestAuditTeeKeepsCallBatches(t *testing.T) {
	st := &callCounter{}
	sp := store.NewSpool(auditTee{Store: st, a: &App{}}, nil, 100)
	var rs []store.CallRecord
	for i := range 3 {
		now := time.Now()
		rs = append(rs, store.CallRecord{ID: fmt.Sprint("call-", i), Protocol: "h323", StartedAt: now, AnsweredAt: now, EndedAt: now, EndedBy: "caller"})
	}
	if err := sp.AddCalls(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if st.batches != 1 || st.inBatches != 3 || st.one != 0 {
		t.Fatalf("store got %d batches with %d records and %d single records, want 1 batch of 3", st.batches, st.inBatches, st.one)
	}
}
