package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// TestAddCalls checks that a batch of calls is recorded whole, that a
// batch holding a call already recorded records none of them (ErrExists),
// and that the spool's AddCalls then still records every other call of it.
func TestAddCalls(t *testing.T) {
	ctx := context.Background()
	st := open(t, filepath.Join(t.TempDir(), "portico.db"))
	at := time.Now().UTC().Truncate(time.Microsecond)
	rec := func(i int) store.CallRecord {
		return store.CallRecord{ID: fmt.Sprintf("call-%d", i), Protocol: "h323", From: "a", To: "1000", StartedAt: at,
			AnsweredAt: at, EndedAt: at.Add(time.Duration(i) * time.Millisecond), EndedBy: "caller", Disposition: "normal"}
	}
	count := func() int {
		cs, err := st.Calls(ctx, store.Query{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(cs)
	}
	if err := st.AddCalls(ctx, []store.CallRecord{rec(1), rec(2), rec(3)}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d calls recorded, want 3", n)
	}
	if err := st.AddCalls(ctx, []store.CallRecord{rec(4), rec(2), rec(5)}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("batch with a recorded call: %v, want ErrExists", err)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d calls recorded after a failed batch, want 3", n)
	}
	sp := store.NewSpool(st, nil, 100)
	if err := sp.AddCalls(ctx, []store.CallRecord{rec(4), rec(2), rec(5)}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 5 {
		t.Fatalf("%d calls recorded after the spool's batch, want 5", n)
	}
}
