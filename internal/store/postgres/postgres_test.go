package postgres

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/sqlite"
	"github.com/portico-edge/portico/internal/store/storetest"
)

var dbSeq atomic.Int64

func fresh(t *testing.T, pg *storetest.Postgres) store.Store {
	t.Helper()
	dsn := pg.NewDatabase(t, fmt.Sprintf("t%d_%d", time.Now().UnixNano()%1e9, dbSeq.Add(1)))
	st, err := Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestPostgres(t *testing.T) {
	pg := storetest.StartPostgres(t)
	t.Run("suite", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return fresh(t, pg) })
	})

	// A backup taken on SQLite restores into PostgreSQL and back, row for row.
	t.Run("sqlite to postgres and back", func(t *testing.T) {
		ctx := context.Background()
		lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer lite.Close()
		storetest.Seed(t, lite)
		s1, err := lite.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pgs := fresh(t, pg)
		if err := pgs.Restore(ctx, s1); err != nil {
			t.Fatal(err)
		}
		s2, err := pgs.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s1, s2) {
			t.Fatalf("PostgreSQL snapshot differs from the SQLite one it was restored from")
		}
		back, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "b.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer back.Close()
		if err := back.Restore(ctx, s2); err != nil {
			t.Fatal(err)
		}
		s3, _ := back.Snapshot(ctx)
		if !reflect.DeepEqual(s1, s3) {
			t.Fatalf("SQLite → PostgreSQL → SQLite changed the data")
		}
	})

	// The store lost while running: history is queued, nothing is lost, and
	// it is written when the server is back.
	t.Run("spool survives a lost store", func(t *testing.T) {
		if pg.Port == 0 {
			t.Skip("external PostgreSQL from PORTICO_TEST_POSTGRES_DSN cannot be stopped by the test")
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := fresh(t, pg)
		sp := store.NewSpool(st, nil, 1000)
		done := make(chan error)
		go func() { done <- sp.Run(ctx) }()
		sp.AddCall(ctx, store.CallRecord{ID: "before", Protocol: "sip", StartedAt: time.Now(), EndedAt: time.Now()})
		pg.Stop()
		if err := st.Ping(ctx); err == nil {
			t.Fatal("Ping succeeded with the server stopped")
		}
		for i := 0; i < 10; i++ {
			sp.AddCall(ctx, store.CallRecord{ID: fmt.Sprint("during-", i), Protocol: "sip", StartedAt: time.Now(), EndedAt: time.Now()})
		}
		if sp.Healthy() || sp.Pending() != 10 {
			t.Fatalf("spool pending %d while the store is down, want 10", sp.Pending())
		}
		pg.Start()
		deadline := time.Now().Add(30 * time.Second)
		for sp.Pending() > 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		calls, err := st.Calls(ctx, store.Query{Limit: 100})
		if err != nil || len(calls) != 11 {
			t.Fatalf("after recovery %d calls (%v), want 11", len(calls), err)
		}
		cancel()
		<-done
	})

	t.Run("unreachable server named, password hidden", func(t *testing.T) {
		_, err := Open(context.Background(), "postgres://portico:hunter2-secret@127.0.0.1:1/x?connect_timeout=2", nil)
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open = %v", err)
		}
	})
}
