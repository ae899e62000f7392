package app

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitSynced: the speaker of a node with a sync link starts once the
// peer's snapshot is applied, or after the limit when no peer answers, or
// not at all when the node stops while waiting.
func TestWaitSynced(t *testing.T) {
	var synced atomic.Bool
	go func() {
		time.Sleep(30 * time.Millisecond)
		synced.Store(true)
	}()
	if !waitSynced(context.Background(), synced.Load, 10*time.Second, time.Millisecond) {
		t.Fatal("waitSynced gave up although the peer's snapshot arrived")
	}
	if !synced.Load() {
		t.Fatal("waitSynced returned before the snapshot arrived")
	}
	never := func() bool { return false }
	start := time.Now()
	if waitSynced(context.Background(), never, 40*time.Millisecond, time.Millisecond) {
		t.Fatal("waitSynced reported a snapshot that never came")
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Fatal("waitSynced gave up before its limit")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if waitSynced(ctx, never, time.Hour, time.Millisecond) {
		t.Fatal("waitSynced reported a snapshot after the node stopped")
	}
}
