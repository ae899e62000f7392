package callsig

import (
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/store"
)

// TestHistoryWaitsNotCalls holds the store on the first call's record and
// checks that further calls still connect and end, and that their records
// reach the store once it answers.
func TestHistoryWaitsNotCalls(t *testing.T) {
	batches := make(chan []store.CallRecord, 10)
	release := make(chan struct{})
	first := true
	p := startPortico(t, Config{}, func(d *Deps) {
		d.History = nil
		d.HistoryBatch = func(b []store.CallRecord) {
			batches <- b
			if first {
				first = false
				<-release // a store that does not answer
			}
		}
	})
	calleeLn := routeTo(t, p)
	call := func() {
		id := newCallID()
		caller, callee := placeCall(t, p.outAddr, calleeLn, id)
		callee.send(q931.Connect, true, answerUI(h225.H323UUPDUH323MessageBody_Connect, id, netip.AddrPort{}, nil))
		caller.expect(q931.Connect)
		caller.send(q931.ReleaseComplete, false, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, id, netip.AddrPort{}, nil), withCause(CauseNormal))
		callee.expect(q931.ReleaseComplete)
	}
	wait := func() []store.CallRecord {
		select {
		case b := <-batches:
			return b
		case <-time.After(10 * time.Second):
			t.Fatal("no history batch")
		}
		return nil
	}
	call()
	if b := wait(); len(b) != 1 {
		t.Fatalf("first batch: %d records", len(b))
	}
	for i := 0; i < 3; i++ {
		call() // the store still holds the first record
	}
	// All three calls have ended: their goroutines are gone.
	deadline := time.Now().Add(10 * time.Second)
	for p.srv.Calls() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	var got []store.CallRecord
	for len(got) < 3 {
		got = append(got, wait()...)
	}
	if len(got) != 3 {
		t.Fatalf("%d records after the store answered, want 3", len(got))
	}
	for _, r := range got {
		if r.Protocol != "h323" || r.Disposition != "normal" {
			t.Fatalf("record %+v", r)
		}
	}
}
