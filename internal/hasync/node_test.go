package hasync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// table is an in-memory state holder standing in for a service: the
// node's behaviour under test is the same whatever the body means.
type table struct {
	mu sync.Mutex
	m  map[string]string
	// block, when set, stalls Apply until closed (a slow peer).
	block chan struct{}
	// pruned are the keys removed by Prune: the peer's snapshot no longer
	// held them.
	pruned []string
}

func newTable() *table { return &table{m: map[string]string{}} }

func (t *table) Keys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.m))
	for k := range t.m {
		out = append(out, k)
	}
	return out
}

func (t *table) Export(k string) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[k]
	return []byte(v), ok
}

func (t *table) Apply(k string, b []byte) error {
	if t.block != nil {
		<-t.block
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[k] = string(b)
	return nil
}

func (t *table) Remove(k string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, k)
	return nil
}

func (t *table) Prune(k string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, k)
	t.pruned = append(t.pruned, k)
	return nil
}

func (t *table) set(k, v string) {
	t.mu.Lock()
	t.m[k] = v
	t.mu.Unlock()
}

func (t *table) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s []string
	for k, v := range t.m {
		s = append(s, k+"="+v)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

const testSecret = "0123456789abcdef0123456789abcdef-test"

type pair struct {
	a, b     *Node
	src, dst *table
	regA     *prometheus.Registry
	ln       net.Listener
}

// startPair runs node a (sender) toward node b (receiver) on loopback.
func startPair(t *testing.T, cfgA Config, secretB string) *pair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{src: newTable(), dst: newTable(), regA: prometheus.NewRegistry(), ln: ln}
	cfgA.Peer, cfgA.Secret = ln.Addr().String(), testSecret
	if cfgA.Heartbeat == 0 {
		cfgA.Heartbeat.UnmarshalText([]byte("100ms"))
	}
	p.a, err = New(cfgA, Deps{Name: "edge-a", Registerer: p.regA})
	if err != nil {
		t.Fatal(err)
	}
	cfgB := Config{Listen: ln.Addr().String(), Secret: secretB, Heartbeat: cfgA.Heartbeat}
	p.b, err = New(cfgB, Deps{Name: "edge-b"})
	if err != nil {
		t.Fatal(err)
	}
	p.a.Register(KindMedia, p.src, nil)
	p.b.Register(KindMedia, nil, p.dst)
	return p
}

func (p *pair) run(t *testing.T) (stopA, stopB func()) {
	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.a.Serve(ctxA, nil) })
	wg.Go(func() { p.b.Serve(ctxB, p.ln) })
	t.Cleanup(func() { cancelA(); cancelB(); wg.Wait() })
	return cancelA, cancelB
}

// eventually polls cond for up to 10 s (a bound for a stuck test, not a
// timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not reached", what)
}

func TestSnapshotThenChanges(t *testing.T) {
	p := startPair(t, Config{}, testSecret)
	p.src.set("m1", "one")
	p.src.set("m2", "two")
	if p.b.Synced() {
		t.Fatal("synced before any link")
	}
	p.run(t)
	eventually(t, "snapshot", func() bool { return p.dst.String() == "m1=one,m2=two" })
	eventually(t, "synced", p.b.Synced)

	p.src.set("m3", "three")
	p.a.Changed(KindMedia, "m3")
	p.src.set("m1", "uno")
	p.a.Changed(KindMedia, "m1")
	p.src.Remove("m2")
	p.a.Changed(KindMedia, "m2")
	eventually(t, "changes", func() bool { return p.dst.String() == "m1=uno,m3=three" })
	eventually(t, "acknowledged", func() bool { return p.a.Lag() == 0 })
	if p.a.LastLag() <= 0 {
		t.Fatalf("last lag %v: no acknowledgement measured", p.a.LastLag())
	}
	if got := testutil.ToFloat64(p.a.m.sent); got < 5 {
		t.Fatalf("records sent %v, want at least 5", got)
	}
	if got := testutil.ToFloat64(p.a.m.resyncConnect); got != 1 {
		t.Fatalf("connect resyncs %v, want 1", got)
	}
	n, err := testutil.GatherAndCount(p.regA, "portico_ha_sync_lag_seconds", "portico_ha_sync_records_total", "portico_ha_sync_resyncs_total")
	if err != nil || n < 3 {
		t.Fatalf("metrics: %d series, %v", n, err)
	}
}

// A sender that restarts sends a full snapshot; what it no longer holds
// is removed on the receiver, what it still holds stays.
func TestReconnectPrunes(t *testing.T) {
	p := startPair(t, Config{}, testSecret)
	p.src.set("m1", "one")
	p.src.set("m2", "two")
	stopA, _ := p.run(t)
	eventually(t, "snapshot", func() bool { return p.dst.String() == "m1=one,m2=two" })
	stopA()
	eventually(t, "link down", func() bool { return !p.a.Connected() })

	p.src.Remove("m1") // the change is not announced: the snapshot must carry it
	p.src.set("m4", "four")
	a2, err := New(Config{Peer: p.ln.Addr().String(), Secret: testSecret, Heartbeat: p.a.cfg.Heartbeat}, Deps{Name: "edge-a"})
	if err != nil {
		t.Fatal(err)
	}
	a2.Register(KindMedia, p.src, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a2.Serve(ctx, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "resnapshot", func() bool { return p.dst.String() == "m2=two,m4=four" })
	p.dst.mu.Lock()
	defer p.dst.mu.Unlock()
	if !slices.Equal(p.dst.pruned, []string{"m1"}) {
		t.Errorf("removed by Prune: %q, want [m1]", p.dst.pruned)
	}
}

// A peer with another secret is refused by TLS: nothing is applied.
func TestWrongSecretRefused(t *testing.T) {
	p := startPair(t, Config{}, "another secret of at least thirty-two bytes")
	p.src.set("m1", "one")
	p.run(t)
	eventually(t, "link errors", func() bool { return testutil.ToFloat64(p.a.m.linkErrors) >= 2 })
	if p.dst.String() != "" || p.b.Applied() != 0 {
		t.Fatalf("applied from an unauthenticated peer: %q", p.dst.String())
	}
}

// A peer that stalls never blocks Changed: the queue overflows, changes
// are dropped and counted, and a snapshot brings the peer up to date once
// it reads again.
func TestSlowPeerResyncs(t *testing.T) {
	p := startPair(t, Config{Queue: 8}, testSecret)
	p.dst.block = make(chan struct{})
	p.src.set("m0", "zero")
	p.run(t)
	eventually(t, "link up", p.a.Connected)
	for i := range 5000 {
		k := fmt.Sprintf("m%d", i%300)
		p.src.set(k, fmt.Sprint(i))
		p.a.Changed(KindMedia, k) // returns at once whatever the peer does
	}
	if testutil.ToFloat64(p.a.m.dropped) == 0 || testutil.ToFloat64(p.a.m.resyncOverflow) == 0 {
		t.Fatal("no change dropped for the full queue")
	}
	if p.a.Lag() == 0 {
		t.Fatal("lag is 0 while the peer holds nothing")
	}
	want := p.src.String()
	close(p.dst.block)
	eventually(t, "converged", func() bool { return p.dst.String() == want })
	eventually(t, "acknowledged", func() bool { return p.a.Lag() == 0 })
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"off", Config{}, ""},
		{"ok", Config{Listen: "10.0.0.11:7946", Peer: "10.0.0.12:7946", Secret: testSecret}, ""},
		{"file", Config{Peer: "10.0.0.12:7946", SecretFile: "/etc/portico/sync.key"}, ""},
		{"no secret", Config{Peer: "10.0.0.12:7946"}, "ha.sync.secret: required"},
		{"short secret", Config{Peer: "10.0.0.12:7946", Secret: "short"}, "ha.sync.secret: 5 bytes"},
		{"both", Config{Peer: "10.0.0.12:7946", Secret: testSecret, SecretFile: "/x"}, "not both"},
		{"bad peer", Config{Peer: "edge-b", Secret: testSecret}, "ha.sync.peer"},
		{"bad frame", Config{Peer: "10.0.0.12:7946", Secret: testSecret, MaxFrame: 10}, "ha.sync.max_frame"},
		{"negative queue", Config{Queue: -1}, "ha.sync.queue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate("ha.sync")
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{Peer: "10.0.0.12:7946"}, Deps{}); err == nil {
		t.Fatal("New accepted a config without a secret")
	}
}

func TestIdentity(t *testing.T) {
	a, err := newIdentity([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newIdentity([]byte(testSecret))
	c, _ := newIdentity([]byte(testSecret + "x"))
	if err := a.verify(b.cert.Certificate, nil); err != nil {
		t.Fatalf("same secret refused: %v", err)
	}
	if err := a.verify(c.cert.Certificate, nil); !errors.Is(err, ErrPeer) {
		t.Fatalf("other secret: %v", err)
	}
}

// A receiver that applies slowly while the sender keeps its buffer full
// still acknowledges within the heartbeat, so the link is not dropped
// and resent in a loop.
func TestSlowApplyKeepsLink(t *testing.T) {
	p := startPair(t, Config{}, testSecret)
	slow := &slowTable{table: p.dst}
	p.b.sinks[KindMedia] = slow
	for i := range 400 {
		p.src.set(fmt.Sprintf("m%03d", i), strings.Repeat("x", 2000))
	}
	p.run(t)
	eventually(t, "snapshot applied", func() bool { return len(p.dst.Keys()) == 400 })
	if n := testutil.ToFloat64(p.a.m.resyncConnect); n != 1 {
		t.Fatalf("%v connects: the link was dropped while the snapshot was applied", n)
	}
}

// slowTable applies a record in 2 ms: 400 records take 0.8 s, more than
// three 100 ms heartbeats.
type slowTable struct{ *table }

func (s *slowTable) Apply(k string, b []byte) error {
	time.Sleep(2 * time.Millisecond)
	return s.table.Apply(k, b)
}
