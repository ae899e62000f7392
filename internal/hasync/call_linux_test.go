package hasync

import (
	"encoding/json"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/sipedge"
)

// TestCallsOverLink: an answered call node A announces reaches node B's
// SIP edge as a dormant call; when A ends it, B forgets it. A body that
// names another call than its key is refused and counted.
func TestCallsOverLink(t *testing.T) {
	srv := testEdge(t, 30100)

	p := startPair(t, Config{}, testSecret)
	calls := newTable()
	p.a.Register(KindDialog, calls, nil)
	p.b.Register(KindDialog, nil, Calls{Server: srv})
	st := sipedge.CallState{ID: "c1", Type: sipedge.CallGuest, MediaID: 7, Legs: [2]sipedge.LegState{
		{Side: sipedge.External, CallID: "x1", LocalTag: "l1", RemoteTag: "r1", Local: "sip:1001@portico.test", Remote: "sip:alice@portico.test", Target: "sip:alice@192.0.2.1:5060", CSeq: 4},
		{Side: sipedge.Internal, CallID: "x2", LocalTag: "l2", RemoteTag: "r2", Local: "sip:alice@portico.test", Remote: "sip:1001@portico.test", Target: "sip:1001@10.0.0.1", Routes: []string{"sip:10.0.0.2;lr"}},
	}}
	body, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	calls.set("c1", string(body))
	calls.set("c2", string(body)) // names c1
	p.run(t)
	eventually(t, "dormant call on B", func() bool { return srv.DormantCalls() == 1 && p.b.Synced() })
	if n := testutil.ToFloat64(p.b.m.applyErrors); n != 1 {
		t.Errorf("refused records: %v", n)
	}
	if len(srv.Calls()) != 0 || len(srv.CallKeys()) != 0 {
		t.Fatalf("a dormant call is listed: %+v", srv.Calls())
	}

	calls.Remove("c1")
	p.a.Changed(KindDialog, "c1")
	eventually(t, "call forgotten on B", func() bool { return srv.DormantCalls() == 0 })
}
