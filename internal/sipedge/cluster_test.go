package sipedge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/store"
)

// memCluster stands in for the shared store (the real tables are tested
// against SQLite and PostgreSQL in package store): it keeps the rows per
// node and can refuse batches.
type memCluster struct {
	mu      sync.Mutex
	rows    map[string]map[string]store.ClusterRegistration // node -> aor\x00contact
	beats   map[string]time.Time
	refuse  bool
	batches int
}

func (m *memCluster) PublishRegistrations(_ context.Context, node string, now time.Time, put, del []store.ClusterRegistration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refuse {
		return errors.New("store down")
	}
	m.batches++
	m.beats[node] = now
	if m.rows[node] == nil {
		m.rows[node] = map[string]store.ClusterRegistration{}
	}
	for _, r := range del {
		delete(m.rows[node], r.AOR+"\x00"+r.Contact)
	}
	for _, r := range put {
		m.rows[node][r.AOR+"\x00"+r.Contact] = r
	}
	return nil
}

func (m *memCluster) LeaveCluster(_ context.Context, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rows, node)
	delete(m.beats, node)
	return nil
}

// aors lists node's published AORs.
func (m *memCluster) aors(node string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.rows[node] {
		out = append(out, r.AOR+" "+r.Source)
	}
	return strings.Join(out, ",")
}

// waitFor fails the test unless cond holds within 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitUntil(t, cond)
	if !cond() {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestClusterPathAndPublish: the Path of a relayed REGISTER names the
// node; the registration is published to the shared store, survives a
// store outage (written once the store is back), is deleted when the
// endpoint unregisters, and the node's rows go when the publisher stops.
func TestClusterPathAndPublish(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	mc := &memCluster{rows: map[string]map[string]store.ClusterRegistration{}, beats: map[string]time.Time{}}
	pub := NewPublisher(mc, "edge-b", nil, nil)
	// A row of an earlier run of this node is removed at start.
	mc.PublishRegistrations(context.Background(), "edge-b", time.Now(), []store.ClusterRegistration{{AOR: "sip:old@portico.test", Contact: "sip:old@192.0.2.1"}}, nil)
	p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1}, func(s *Server) {
		s.deps.Node = "edge-b"
		s.deps.OnRegistration = pub.Changed
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- pub.Run(ctx, p.s) }()
	defer func() { cancel(); <-ran }()
	waitFor(t, "the earlier run's rows removed", func() bool { return mc.aors("edge-b") == "" })

	ua := newRawUA(t, outsideIP, "gina")
	answer := func(expires string) {
		r := cs.expect("REGISTER")
		path := r.GetHeader("Path")
		if path == nil || !strings.Contains(path.Value(), intIP) || !strings.Contains(path.Value(), ";node=edge-b") {
			t.Fatalf("Path = %v, want this node's internal address and node=edge-b", path)
		}
		res := sip.NewResponseFromRequest(r, 200, "OK", nil)
		res.AppendHeader(&sip.ContactHeader{Address: r.Contact().Address, Params: sip.HeaderParams{{K: "expires", V: expires}}})
		cs.send(udpAddr(r.Source()), res.String())
	}
	mc.mu.Lock()
	mc.refuse = true // the store is down when the endpoint registers
	mc.mu.Unlock()
	done := make(chan *sip.Response, 1)
	go func() { done <- ua.register(udpAddr(p.extUDP.String()), 600) }()
	answer("120")
	if r := <-done; r.StatusCode != 200 {
		t.Fatalf("register: %d", r.StatusCode)
	}
	waitFor(t, "a refused batch counted", func() bool { return testutil.ToFloat64(pub.failed) > 0 })
	mc.mu.Lock()
	mc.refuse = false
	mc.mu.Unlock()
	waitFor(t, "the registration published", func() bool {
		return mc.aors("edge-b") == "sip:gina@portico.test "+ua.local
	})

	go func() { done <- ua.register(udpAddr(p.extUDP.String()), 0) }()
	answer("0")
	if r := <-done; r.StatusCode != 200 {
		t.Fatalf("unregister: %d", r.StatusCode)
	}
	waitFor(t, "the removal published", func() bool { return mc.aors("edge-b") == "" })

	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run = %v", err)
	}
	ran <- nil
	mc.mu.Lock()
	_, beating := mc.beats["edge-b"]
	mc.mu.Unlock()
	if beating {
		t.Error("the node's heartbeat stays after the publisher stopped")
	}
}

// TestOtherNodeFlowRefused: an inside INVITE whose Route is another node's
// Path is refused with 404 and counted, not sent anywhere.
func TestOtherNodeFlowRefused(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1}, func(s *Server) { s.deps.Node = "edge-b" })
	route := "Route: <sip:aaaaaaaaaaaaaaaaaaaaaaaaaaaa@" + p.intUDP.String() + ";lr;ob;node=edge-a>\r\n"
	res := cs.invite(udpAddr(p.intUDP.String()), "sip:gina@198.51.100.9:5060", cs.sdp("sendrecv"), route)
	if res.StatusCode != 404 {
		t.Errorf("INVITE for edge-a's flow: %d, want 404", res.StatusCode)
	}
	if n := testutil.ToFloat64(p.s.m.rejected.WithLabelValues("other_node")); n != 1 {
		t.Errorf("rejected{other_node} = %v, want 1", n)
	}
	// This node's own name in the Route is not another node's.
	if code, _ := p.s.otherNodeFlow(mustRequest(t, "INVITE sip:x@192.0.2.1 SIP/2.0\r\nRoute: <sip:tok@10.0.0.1;lr;node=edge-b>\r\n\r\n")); code != 0 {
		t.Errorf("own node refused: %d", code)
	}
}

func mustRequest(t *testing.T, raw string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*sip.Request)
}

func TestPathNode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"edge-a", "edge-a"}, {"node_1.dc2", "node_1.dc2"}, {"", ""}, {"a b", ""}, {"a;b", ""}, {"a=b", ""},
	} {
		if got := pathNode(tc.in); got != tc.want {
			t.Errorf("pathNode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
