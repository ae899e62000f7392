package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
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
	t.Run("spool survives a lost server", func(t *testing.T) {
		if pg.Port == 0 {
			t.Skip("external PostgreSQL from PORTICO_TEST_POSTGRES_DSN cannot be stopped by the test")
		}
		st := fresh(t, pg)
		down := func() {
			pg.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := st.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("Ping with the server stopped = %v, want ErrUnavailable", err)
			}
		}
		storetest.SpoolSurvives(t, st, st, down, pg.Start)
		if err := st.Ping(context.Background()); err != nil {
			t.Errorf("Ping after restart: %v", err)
		}
	})

	// Nodes of a cluster share one database: they start together (one
	// migrates), and their config writers race across connection pools.
	t.Run("two nodes", func(t *testing.T) {
		dsn := pg.NewDatabase(t, fmt.Sprintf("nodes_%d", dbSeq.Add(1)))
		ctx := context.Background()
		nodes := make([]*Store, 3)
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i := range nodes {
			wg.Add(1)
			go func() { defer wg.Done(); nodes[i], errs[i] = Open(ctx, dsn, nil) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("node %d open: %v", i, err)
			}
			t.Cleanup(func() { nodes[i].Close() })
		}
		if _, err := nodes[0].PutConfig(ctx, []byte("base"), "a", "", 0); err != nil {
			t.Fatal(err)
		}
		var wins, conflicts atomic.Int32
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := nodes[i%3].PutConfig(ctx, []byte(fmt.Sprint(i)), "racer", "", 1)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("PutConfig: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 11 {
			t.Errorf("%d wins %d conflicts across nodes, want 1 and 11", wins.Load(), conflicts.Load())
		}
	})

	// A restore cuts in while another node writes history: afterwards the
	// store holds exactly the snapshot plus what was written after it.
	t.Run("restore beside writers", func(t *testing.T) {
		st := fresh(t, pg)
		ctx := context.Background()
		storetest.Seed(t, st)
		snap, err := st.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := st.AddEvent(ctx, store.Event{Time: time.Now().UTC(), Severity: "info", Component: "w", Message: fmt.Sprint("w", i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		for range 5 {
			if err := st.Restore(ctx, snap); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
		after, _ := st.Snapshot(ctx)
		seen := map[int64]bool{}
		for _, e := range after.Events {
			if seen[e.ID] {
				t.Fatalf("event id %d twice", e.ID)
			}
			seen[e.ID] = true
		}
		if len(after.Calls) != len(snap.Calls) || len(after.Events) < len(snap.Events) {
			t.Errorf("after restores: %d calls %d events; snapshot had %d, %d", len(after.Calls), len(after.Events), len(snap.Calls), len(snap.Events))
		}
	})

	t.Run("unreachable server named, password hidden", func(t *testing.T) {
		port := freePort(t)
		tests := []struct {
			name, dsn, want string
			unavailable     bool
		}{
			{"url", fmt.Sprintf("postgres://portico:hunter2-secret@127.0.0.1:%d/x?connect_timeout=2", port), fmt.Sprintf("store: postgres at 127.0.0.1:%d unreachable: ", port), true},
			{"key value", fmt.Sprintf("host=127.0.0.1 port=%d user=portico password=hunter2-secret dbname=x connect_timeout=2", port), fmt.Sprintf("store: postgres at 127.0.0.1:%d unreachable: ", port), true},
			{"wrong password", strings.Replace(pg.DSN, "postgres@", "nobody:hunter2-secret@", 1) + "&connect_timeout=2", "store: postgres at", false},
			{"malformed", "postgres://portico:hunter2-secret@127.0.0.1:99999999/x", "not a valid connection string", false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				st, err := Open(context.Background(), tc.dsn, nil)
				if err == nil {
					st.Close()
					t.Fatal("Open succeeded")
				}
				if !strings.HasPrefix(err.Error(), tc.want) && !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Open = %q, want it to say %q", err, tc.want)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error shows the password: %v", err)
				}
				if tc.unavailable && !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("Open = %v, want ErrUnavailable", err)
				}
			})
		}
	})
}

// freePort is a loopback port nothing listens on.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// benchStore opens a store on a fresh database of the benchmarks'
// PostgreSQL, closed when b ends.
func benchStore(b *testing.B) *Store {
	pg := storetest.StartPostgres(b)
	dsn := pg.NewDatabase(b, fmt.Sprintf("bench_%d", dbSeq.Add(1)))
	st, err := Open(context.Background(), dsn, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkRestore moves a 20,000-call history into PostgreSQL, as a
// backup restore does.
func BenchmarkRestore(b *testing.B) {
	st := benchStore(b)
	snap := &store.Snapshot{SchemaVersion: 1}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20000 {
		snap.Calls = append(snap.Calls, store.CallRecord{ID: fmt.Sprint("c", i), Protocol: "sip", From: "a", To: "b", StartedAt: t0, EndedAt: t0.Add(time.Duration(i) * time.Second),
			Streams: []store.StreamStats{{Kind: "audio", PacketsIn: 100}}})
		snap.Events = append(snap.Events, store.Event{ID: int64(i + 1), Time: t0, Severity: "info", Component: "x", Message: "m"})
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := st.Restore(context.Background(), snap); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishRegistrations measures one node's batch of 1,000
// refreshed registrations (one transaction with its heartbeat and the
// expired-row deletion) against 10,000 rows of three nodes.
func BenchmarkPublishRegistrations(b *testing.B) {
	st := benchStore(b)
	now := time.Now()
	batch := func(node string, from, n int) []store.ClusterRegistration {
		var out []store.ClusterRegistration
		for i := from; i < from+n; i++ {
			out = append(out, store.ClusterRegistration{Node: node, AOR: fmt.Sprintf("sip:u%d@example.com", i), Contact: fmt.Sprintf("sip:u%d@198.51.100.7:%d", i, 1024+i%60000),
				Source: "198.51.100.7:5060", Transport: "udp", Registered: now, Refreshed: now, Expires: now.Add(time.Hour)})
		}
		return out
	}
	ctx := context.Background()
	for i, node := range []string{"a", "b", "c"} {
		for j := 0; j < 3400; j += 1000 {
			if err := st.PublishRegistrations(ctx, node, now, batch(node, i*10000+j, 1000), nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	put := batch("a", 0, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if err := st.PublishRegistrations(ctx, "a", time.Now(), put, nil); err != nil {
			b.Fatal(err)
		}
	}
}
