package connlimit

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestGroupCapsListenersTogether: listeners sharing a Group enforce
// MaxConns and MaxConnsPerSource on their connections together, and a
// slot freed on one listener admits a connection on another.
func TestGroupCapsListenersTogether(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		sources []string // dialled in order, on listeners 0, 1, 2, 0...
		reason  string   // why the last one is refused
	}{
		{"total", Config{MaxConns: 2}, []string{"127.0.0.5", "127.0.0.6", "127.0.0.7"}, ReasonMaxConns},
		{"per source", Config{MaxConns: 10, MaxConnsPerSource: 2}, []string{"127.0.0.5", "127.0.0.5", "127.0.0.5"}, ReasonPerSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGroup()
			var mu sync.Mutex
			var refusals []string
			cfg := tc.cfg
			cfg.Name, cfg.Group = "range", g
			cfg.Refused = func(reason string) {
				mu.Lock()
				defer mu.Unlock()
				refusals = append(refusals, reason)
			}
			reg := prometheus.NewRegistry()
			var ls []*Listener
			var accepted []<-chan net.Conn
			for range 3 {
				l := Wrap(listen(t), cfg, Deps{Registerer: reg})
				ls = append(ls, l)
				accepted = append(accepted, acceptAll(t, l))
			}
			var first net.Conn
			last := len(tc.sources) - 1
			for i, src := range tc.sources[:last] {
				dialFrom(t, ls[i%3], src)
				select {
				case c := <-accepted[i%3]:
					if first == nil {
						first = c
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("connection %d from %s was not accepted", i, src)
				}
			}
			if n := g.Active(); n != last {
				t.Fatalf("group Active = %d, want %d", n, last)
			}
			if n := ls[0].Active(); n != 1 {
				t.Fatalf("listener Active = %d, want its own 1", n)
			}
			// The next one, on a listener that holds none, is beyond the
			// group's cap.
			refused := dialFrom(t, ls[last%3], tc.sources[last])
			if !closedByPeer(refused) {
				t.Fatalf("connection %d on another listener was not refused", last)
			}
			if n := testutil.ToFloat64(ls[last%3].m.refused(tc.reason)); n != 1 {
				t.Errorf("refused %s counted %v, want 1", tc.reason, n)
			}
			mu.Lock()
			if len(refusals) != 1 || refusals[0] != tc.reason {
				t.Errorf("Refused was told %q, want [%s]", refusals, tc.reason)
			}
			mu.Unlock()
			// Closing the first frees its slot for the group.
			first.Close()
			dialFrom(t, ls[last%3], tc.sources[last])
			select {
			case <-accepted[last%3]:
			case <-time.After(10 * time.Second):
				t.Fatal("a slot freed on one listener did not admit a connection on another")
			}
			if n := g.Active(); n != last {
				t.Errorf("group Active = %d, want %d", n, last)
			}
		})
	}
}
