package guard

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// memBlocks is a BlockStore in memory that fails while err is set.
type memBlocks struct {
	mu  sync.Mutex
	m   map[netip.Prefix]ManualBlock
	err error
}

func (s *memBlocks) SaveBlock(_ context.Context, b ManualBlock) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.m[b.Prefix] = b
	return nil
}

func (s *memBlocks) DeleteBlock(_ context.Context, p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	delete(s.m, p)
	return nil
}

func (s *memBlocks) LoadBlocks(context.Context) ([]ManualBlock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var out []ManualBlock
	for _, b := range s.m {
		out = append(out, b)
	}
	return out, nil
}

// TestManualBlocksStored: manual blocks and their removal reach the store
// and come back in a new guard (a restart) until their original end;
// automatic blocks are not stored; a failing store leaves the block in
// force and says a restart loses it.
func TestManualBlocksStored(t *testing.T) {
	st := &memBlocks{m: map[netip.Prefix]ManualBlock{}}
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	newGuard := func(cfg Config) *Guard {
		g, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler), Now: c.now, Store: st})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	cfg := Config{Limits: map[string]Limit{"malformed": {Count: 1, Window: time.Minute}}}
	g := newGuard(cfg)
	short, long, lifted := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("192.0.2.7/32")
	for _, b := range []struct {
		p netip.Prefix
		d time.Duration
	}{{short, time.Minute}, {long, time.Hour}, {lifted, time.Hour}} {
		if err := g.Block(b.p, b.d, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Unblock(lifted); err != nil {
		t.Fatal(err)
	}
	auto := netip.MustParseAddr("192.0.2.99")
	if !g.Observe(auto, Malformed) || !g.Blocked(auto) {
		t.Fatal("automatic block not made")
	}
	if len(st.m) != 2 {
		t.Fatalf("stored %v, want the two manual blocks in force", st.m)
	}

	c.add(10 * time.Minute) // the short block ended while the node was down
	g = newGuard(Config{Allow: []string{"203.0.113.0/24"}})
	if err := g.LoadBlocks(t.Context()); err != nil {
		t.Fatal(err)
	}
	if g.Blocked(netip.MustParseAddr("203.0.113.1")) {
		t.Error("a block of a network now on the allow list was restored")
	}
	g = newGuard(cfg)
	if err := g.LoadBlocks(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{{"203.0.113.1", true}, {"198.51.100.1", false}, {"192.0.2.7", false}, {"192.0.2.99", false}} {
		if got := g.Blocked(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("after restart Blocked(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if bs := g.Blocks(""); len(bs) != 1 || !bs[0].Manual || !bs[0].Until.Equal(time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("restored blocks = %+v, want the hour-long one with its own end", bs)
	}

	st.err = errors.New("store down")
	other := netip.MustParsePrefix("192.0.2.0/28")
	if err := g.Block(other, time.Hour, ""); err == nil || !strings.Contains(err.Error(), "not stored") {
		t.Errorf("Block with the store down = %v", err)
	}
	if !g.Blocked(netip.MustParseAddr("192.0.2.1")) {
		t.Error("block not in force when the store failed")
	}
	if err := g.Unblock(long); err == nil || !strings.Contains(err.Error(), "still stored") {
		t.Errorf("Unblock with the store down = %v", err)
	}
	if err := g.LoadBlocks(t.Context()); err == nil {
		t.Error("LoadBlocks hid the store's failure")
	}
}
