package guard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestGuard(t *testing.T, cfg Config) (*Guard, *clock, *[]Event) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var evs []Event
	var mu sync.Mutex
	g, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler), Now: c.now, Events: func(e Event) { mu.Lock(); evs = append(evs, e); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	return g, c, &evs
}

var a1 = netip.MustParseAddr("192.0.2.1")

func TestScoring(t *testing.T) {
	type step struct {
		kind  Kind
		n     int
		after time.Duration // clock advance after the step
	}
	tests := []struct {
		name    string
		cfg     Config
		steps   []step
		blocked bool
	}{
		{"scanner agent blocks at once", Config{}, []step{{ScannerAgent, 1, 0}}, true},
		{"nine 404s stay below ten", Config{}, []step{{NotFound, 9, 0}}, false},
		{"ten 404s in a burst block", Config{}, []step{{NotFound, 10, 0}}, true},
		{"404s that drain in between do not block", Config{}, []step{{NotFound, 9, time.Minute}, {NotFound, 9, 0}}, false},
		{"half drained bucket fills again", Config{}, []step{{NotFound, 9, 30 * time.Second}, {NotFound, 6, 0}}, true},
		{"half drained bucket short by one", Config{}, []step{{NotFound, 9, 30 * time.Second}, {NotFound, 5, 0}}, false},
		{"kinds have separate buckets", Config{}, []step{{NotFound, 9, 0}, {Forbidden, 9, 0}}, false},
		{"ten 404s spread over a second block", Config{}, slices.Repeat([]step{{NotFound, 1, 100 * time.Millisecond}}, 10), true},
		{"register flood", Config{}, []step{{Register, 300, 0}}, true},
		{"register burst below the flood limit", Config{}, []step{{Register, 299, 0}}, false},
		{"registers at the drain rate never block", Config{}, []step{
			{Register, 50, 5 * time.Second}, {Register, 50, 5 * time.Second}, {Register, 50, 5 * time.Second}, {Register, 50, 0}}, false},
		{"limit overridden", Config{Limits: map[string]Limit{"not_found": {Count: 3, Window: time.Minute}}}, []step{{NotFound, 3, 0}}, true},
		{"count 0 turns a kind off", Config{Limits: map[string]Limit{"scanner_agent": {}}}, []step{{ScannerAgent, 5, 0}}, false},
		{"disabled", Config{Disabled: true}, []step{{ScannerAgent, 1, 0}}, false},
		{"allow list", Config{Allow: []string{"192.0.2.0/24"}}, []step{{ScannerAgent, 1, 0}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, c, _ := newTestGuard(t, tt.cfg)
			var got bool
			for _, s := range tt.steps {
				for range s.n {
					got = g.Observe(a1, s.kind) || got
				}
				c.add(s.after)
			}
			if got != tt.blocked || g.Blocked(a1) != tt.blocked {
				t.Fatalf("Observe reported %v, Blocked %v; want %v", got, g.Blocked(a1), tt.blocked)
			}
		})
	}
}

func TestBlockLifecycle(t *testing.T) {
	g, c, evs := newTestGuard(t, Config{BlockTime: time.Minute, MaxBlockTime: 3 * time.Minute})
	other := netip.MustParseAddr("192.0.2.2")
	g.Observe(a1, ScannerAgent)
	if !g.Blocked(a1) || g.Blocked(other) {
		t.Fatal("only the scanner is blocked")
	}
	if !g.Blocked(netip.MustParseAddr("::ffff:192.0.2.1")) {
		t.Fatal("the v4-mapped form of a blocked address passes")
	}
	bl := g.Blocks("")
	if len(bl) != 1 || bl[0].Source != "192.0.2.1" || bl[0].Reason != "scanner_agent" || bl[0].Dropped != 2 {
		t.Fatalf("blocks %+v", bl)
	}
	c.add(59 * time.Second)
	if !g.Blocked(a1) {
		t.Fatal("unblocked before block_time")
	}
	c.add(time.Second)
	if g.Blocked(a1) {
		t.Fatal("still blocked after block_time")
	}
	g.Sweep()
	if len(g.Blocks("")) != 0 {
		t.Fatal("ended block listed")
	}
	// Repeat offences double the block time up to max_block_time.
	for i, want := range []time.Duration{2 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
		g.Observe(a1, ScannerAgent)
		b := g.Blocks("")
		if len(b) != 1 || b[0].Until.Sub(b[0].Since) != want {
			t.Fatalf("offence %d: %+v, want %v", i+2, b, want)
		}
		c.add(want)
		g.Sweep()
	}
	var actions []string
	for _, e := range *evs {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "blocked,unblocked,blocked,unblocked,blocked,unblocked,blocked,unblocked" {
		t.Fatalf("events %s", got)
	}
}

func TestIPv6Prefix(t *testing.T) {
	tests := []struct {
		name   string
		bits   int
		other  string
		shared bool
	}{
		{"same /64", 0, "2001:db8:1:2::99", true},
		{"other /64", 0, "2001:db8:1:3::1", false},
		{"per address", 128, "2001:db8:1:2::99", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _, _ := newTestGuard(t, Config{IPv6Prefix: tt.bits})
			g.Observe(netip.MustParseAddr("2001:db8:1:2::1"), ScannerAgent)
			if got := g.Blocked(netip.MustParseAddr(tt.other)); got != tt.shared {
				t.Fatalf("Blocked(%s) = %v", tt.other, got)
			}
		})
	}
}

func TestManualBlocks(t *testing.T) {
	g, c, _ := newTestGuard(t, Config{Allow: []string{"10.0.0.0/8"}})
	if err := g.Block(netip.MustParsePrefix("198.51.100.0/24"), time.Hour, "abuse report"); err != nil {
		t.Fatal(err)
	}
	if err := g.Block(netip.MustParsePrefix("10.1.2.3/32"), time.Hour, ""); !errors.Is(err, ErrAllowed) {
		t.Fatalf("allow-listed block: %v", err)
	}
	if !g.Blocked(netip.MustParseAddr("198.51.100.7")) || g.Blocked(netip.MustParseAddr("198.51.101.7")) {
		t.Fatal("network block does not cover its addresses only")
	}
	g.Observe(a1, ScannerAgent)
	for _, q := range []string{"198.51.100.7", "abuse", "198.51"} {
		if b := g.Blocks(q); len(b) != 1 || b[0].Source != "198.51.100.0/24" || !b[0].Manual {
			t.Fatalf("search %q: %+v", q, b)
		}
	}
	if err := g.Unblock(netip.MustParsePrefix("198.51.100.0/24")); err != nil {
		t.Fatal(err)
	}
	if g.Blocked(netip.MustParseAddr("198.51.100.7")) {
		t.Fatal("blocked after Unblock")
	}
	if err := g.Unblock(netip.MustParsePrefix("198.51.100.0/24")); !errors.Is(err, ErrNotBlocked) {
		t.Fatalf("second Unblock: %v", err)
	}
	// An unblocked source starts from empty buckets.
	g.Unblock(netip.PrefixFrom(a1, 32))
	for range 9 {
		g.Observe(a1, NotFound)
	}
	c.add(0)
	if g.Blocked(a1) {
		t.Fatal("blocked below the limit")
	}
}

func TestUserDigestFailures(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{UserDigestFailures: Limit{Count: 3, Window: time.Hour}})
	// Guessing spread over sources: each fails once, under the per-source limit.
	var blocked []int
	for i := range 6 {
		src := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		if g.ObserveDigestFailure(src, "Alice") {
			blocked = append(blocked, i)
		}
	}
	if fmt.Sprint(blocked) != "[2 3 4 5]" {
		t.Fatalf("blocked sources %v, want the third onwards", blocked)
	}
	if g.ObserveDigestFailure(netip.MustParseAddr("203.0.113.99"), "bob") {
		t.Fatal("another user's failure blocked")
	}
}

func TestTableBounded(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{MaxSources: 64})
	// A source near its limit survives a spray of new sources.
	for range 9 {
		g.Observe(a1, NotFound)
	}
	for i := range 5000 {
		g.Observe(netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 1}), Options)
		if n := g.Sources(); n > 64 {
			t.Fatalf("%d sources tracked, cap 64", n)
		}
	}
	if !g.Observe(a1, NotFound) {
		t.Fatal("the near-limit source was evicted by the spray")
	}
}

func TestSweepForgets(t *testing.T) {
	g, c, _ := newTestGuard(t, Config{})
	g.Observe(a1, NotFound)
	g.Sweep()
	if g.Sources() != 1 {
		t.Fatal("forgot a source with a non-empty bucket")
	}
	c.add(time.Minute)
	g.Sweep()
	if g.Sources() != 0 {
		t.Fatal("kept a drained source")
	}
}

func TestScannerAgent(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{})
	for ua, want := range map[string]bool{"friendly-scanner": true, "SIPVicious 0.3.3": true, "Linphone/5.1": false, "": false} {
		if g.ScannerAgent(ua) != want {
			t.Errorf("ScannerAgent(%q) != %v", ua, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		path string
	}{
		{"unknown kind", Config{Limits: map[string]Limit{"flood": {Count: 1, Window: time.Second}}}, "guard.limits.flood"},
		{"no window", Config{Limits: map[string]Limit{"register": {Count: 1}}}, "guard.limits.register.window"},
		{"bad allow", Config{Allow: []string{"10.0.0.0/8", "nonsense"}}, "guard.allow[1]"},
		{"v6 prefix", Config{IPv6Prefix: 8}, "guard.ipv6_prefix"},
		{"max below block", Config{BlockTime: time.Hour, MaxBlockTime: time.Minute}, "guard.max_block_time"},
		{"kernel", Config{Kernel: "maybe"}, "guard.kernel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			var ce ConfigError
			if !errors.As(err, &ce) || ce[0].Path != tt.path {
				t.Fatalf("error %v, want path %s", err, tt.path)
			}
		})
	}
}

func TestBlockedDoesNotAllocate(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{})
	g.Observe(a1, ScannerAgent)
	other := netip.MustParseAddr("2001:db8::1")
	if n := testing.AllocsPerRun(100, func() { g.Blocked(a1); g.Blocked(other) }); n != 0 {
		t.Fatalf("Blocked allocates %v times", n)
	}
}

func BenchmarkBlocked(b *testing.B) {
	for _, bc := range []struct {
		name   string
		blocks int
		src    string
	}{{"empty set", 0, "192.0.2.1"}, {"1000 blocks, miss", 1000, "192.0.2.1"}, {"1000 blocks, hit", 1000, "198.51.1.1"}} {
		b.Run(bc.name, func(b *testing.B) {
			g, err := New(Config{}, Deps{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			for i := range bc.blocks {
				g.Block(netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 32), time.Hour, "")
			}
			src := netip.MustParseAddr(bc.src)
			b.ReportAllocs()
			for b.Loop() {
				g.Blocked(src)
			}
		})
	}
}

func BenchmarkObserve(b *testing.B) {
	g, err := New(Config{}, Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		g.Observe(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Options)
	}
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		m      Method
		n      int           // requests at once
		passed int           // of which pass
		retry  time.Duration // of the last refused
		drop   bool
	}{
		{"register burst", Config{}, MethodRegister, 60, 50, time.Second, false},
		{"invite burst", Config{}, MethodInvite, 21, 20, time.Second, false},
		{"configured, drop", Config{RateLimits: RateLimits{Options: &Rate{PerSecond: 1, Burst: 2}, Action: "drop"}}, MethodOptions, 5, 2, time.Second, true},
		{"burst defaults to one second", Config{RateLimits: RateLimits{Invite: &Rate{PerSecond: 3}}}, MethodInvite, 4, 3, time.Second, false},
		{"off", Config{RateLimits: RateLimits{Register: &Rate{}}}, MethodRegister, 1000, 1000, 0, false},
		{"allow list", Config{Allow: []string{"192.0.2.0/24"}}, MethodRegister, 1000, 1000, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, c, _ := newTestGuard(t, tt.cfg)
			passed := 0
			var retry time.Duration
			var drop bool
			for range tt.n {
				ok, r, d := g.Limit(a1, tt.m)
				if ok {
					passed++
				} else {
					retry, drop = r, d
				}
			}
			if passed != tt.passed || retry != tt.retry || drop != tt.drop {
				t.Fatalf("passed %d, retry %v, drop %v; want %d, %v, %v", passed, retry, drop, tt.passed, tt.retry, tt.drop)
			}
			if tt.retry == 0 {
				return
			}
			if ok, _, _ := g.Limit(netip.MustParseAddr("192.0.2.200"), tt.m); !ok {
				t.Fatal("another source is limited too")
			}
			c.add(tt.retry)
			if ok, _, _ := g.Limit(a1, tt.m); !ok {
				t.Fatalf("still limited after Retry-After %v", tt.retry)
			}
		})
	}
}

// TestReloadIPv6Prefix: blocks made under one ipv6_prefix keep blocking
// their networks after a reload changes it.
func TestReloadIPv6Prefix(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{})
	g.Observe(netip.MustParseAddr("2001:db8:1:2::1"), ScannerAgent)
	if _, err := g.Reload(Config{IPv6Prefix: 128}); err != nil {
		t.Fatal(err)
	}
	if !g.Blocked(netip.MustParseAddr("2001:db8:1:2::99")) {
		t.Fatal("the /64 block stopped blocking after the reload")
	}
	g.Observe(netip.MustParseAddr("2001:db8:9::1"), ScannerAgent)
	if !g.Blocked(netip.MustParseAddr("2001:db8:9::1")) || g.Blocked(netip.MustParseAddr("2001:db8:9::2")) {
		t.Fatal("new blocks are not per address")
	}
}
