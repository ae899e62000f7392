package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/storetest"
)

func open(t testing.TB, path string) *Store {
	t.Helper()
	st, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "portico.db"))
	})
}

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "portico.db")
	st := open(t, path)
	ctx := context.Background()
	if _, err := st.PutConfig(ctx, []byte("x"), "a", "", 0); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v (WAL mode should make it)", filepath.Base(p), err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
	// Reopening an existing database migrates nothing and keeps data.
	st.Close()
	st2 := open(t, path)
	if v, err := st2.ActiveConfig(ctx); err != nil || v.Version != 1 {
		t.Errorf("after reopen: %+v, %v", v, err)
	}
	if st2.Backend() != "sqlite" {
		t.Errorf("Backend() = %q", st2.Backend())
	}
	if err := st2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := st2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		path func(t *testing.T) string
	}{
		{"empty path", func(t *testing.T) string { return "" }},
		{"directory in the way", func(t *testing.T) string { return t.TempDir() }},
		{"parent is a file", func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "file")
			os.WriteFile(f, nil, 0o600)
			return filepath.Join(f, "portico.db")
		}},
		{"not a database", func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "junk.db")
			os.WriteFile(f, []byte(strings.Repeat("not sqlite ", 200)), 0o600)
			return f
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Open(context.Background(), tc.path(t), nil)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

// Two stores on one file (the daemon and a CLI command, say) write at once:
// the single-writer connection of each plus BEGIN IMMEDIATE and the busy
// timeout mean no SQLITE_BUSY reaches a caller.
func TestTwoProcessesWriteOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portico.db")
	a, b := open(t, path), open(t, path)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i, st := range []*Store{a, b, a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 40 {
				id := fmt.Sprintf("p%d-%d", i, j)
				if err := st.AddCall(ctx, store.CallRecord{ID: id, Protocol: "sip", EndedAt: time.Now()}); err != nil {
					errs <- err
				}
				if _, err := st.PutConfig(ctx, []byte(id), "w", "", -1); err != nil {
					errs <- err
				}
				if _, err := st.Calls(ctx, store.Query{Limit: 3}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent writer: %v", err)
	}
	if cs, _ := a.Calls(ctx, store.Query{Limit: 1000}); len(cs) != 240 {
		t.Errorf("%d calls, want 240", len(cs))
	}
	if vs, _ := b.ConfigVersions(ctx, 1000); len(vs) != 240 || vs[0].Version != 240 {
		t.Errorf("%d config versions, want 240 contiguous", len(vs))
	}
}

// The read pool cannot write: a stray write there would be a second writer.
func TestReaderIsReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portico.db")
	open(t, path)
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.QueryContext(context.Background(), "SELECT COUNT(*) FROM events"); err != nil {
		t.Fatalf("read through the read pool: %v", err)
	}
	if _, err := r.ExecContext(context.Background(), "INSERT INTO events (time, severity, component, message) VALUES (1, 'x', 'x', 'x')"); err == nil {
		t.Fatal("write through the read pool succeeded")
	}
}

// A closed store reports it, and the error is not mistaken for a lost
// database the spool should wait for.
func TestClosed(t *testing.T) {
	st := open(t, filepath.Join(t.TempDir(), "portico.db"))
	st.Close()
	err := st.AddEvent(context.Background(), store.Event{Message: "x"})
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("AddEvent after Close = %v", err)
	}
}

func benchCall(i int) store.CallRecord {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return store.CallRecord{
		ID: fmt.Sprintf("bench-%08d", i), Protocol: "sip", CallType: "guest", From: fmt.Sprintf("sip:u%d@outside.example", i), To: "sip:7001@inside",
		SourceAddr: "203.0.113.7:5060", StartedAt: t0, AnsweredAt: t0.Add(time.Second), EndedAt: t0.Add(time.Minute), DurationMs: 59000,
		EndedBy: "caller", Status: 200, Disposition: "normal", Codecs: "H264/OPUS",
		Streams: []store.StreamStats{{Kind: "audio", PacketsIn: 3000, PacketsOut: 3000, BytesIn: 480000, BytesOut: 480000, JitterMs: 1.5, RTTMs: 20},
			{Kind: "video", PacketsIn: 90000, PacketsOut: 89990, BytesIn: 90000000, BytesOut: 89990000, PacketsLost: 10, JitterMs: 4, RTTMs: 20}},
	}
}

func BenchmarkAddCall(b *testing.B) {
	st := open(b, filepath.Join(b.TempDir(), "portico.db"))
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := st.AddCall(ctx, benchCall(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkAddCallParallel(b *testing.B) {
	st := open(b, filepath.Join(b.TempDir(), "portico.db"))
	ctx := context.Background()
	var mu sync.Mutex
	n := 0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i := n
			n++
			mu.Unlock()
			if err := st.AddCall(ctx, benchCall(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkCalls(b *testing.B) {
	st := open(b, filepath.Join(b.TempDir(), "portico.db"))
	ctx := context.Background()
	const rows = 20000
	snap := &store.Snapshot{SchemaVersion: 1}
	for i := range rows {
		snap.Calls = append(snap.Calls, benchCall(i))
	}
	if err := st.Restore(ctx, snap); err != nil {
		b.Fatal(err)
	}
	for _, q := range []struct {
		name string
		q    store.Query
	}{
		{"newest100", store.Query{Limit: 100}},
		{"page50", store.Query{Limit: 100, Offset: 5000}},
		{"window", store.Query{Since: time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC), Until: time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)}},
		{"search", store.Query{Search: "u1999", Limit: 100}},
	} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cs, err := st.Calls(ctx, q.q)
				if err != nil || len(cs) == 0 {
					b.Fatal(len(cs), err)
				}
			}
		})
	}
}
