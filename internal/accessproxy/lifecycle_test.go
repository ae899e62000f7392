package accessproxy

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestNewStartsNoGoroutine: New only validates and builds (the app builds a
// throwaway server to validate every configuration change); Reload leaves
// no goroutine waiting either.
func TestNewStartsNoGoroutine(t *testing.T) {
	p := newPKI(t)
	// Goroutines are compared by identity, not counted: goroutines other
	// tests left (clients' connections, handlers ending) may exit meanwhile.
	before := packageGoroutines()
	s, err := New(Config{Routes: []Route{{Name: "a", Action: "http", Upstream: "http://127.0.0.1:1"}}}, Deps{Certs: p.store})
	if err != nil {
		t.Fatal(err)
	}
	if n := newGoroutines(before); len(n) > 0 {
		t.Errorf("New started %d goroutines:\n%s", len(n), strings.Join(n, "\n\n"))
	}
	if _, err := s.Reload(Config{Timeouts: Timeouts{HTTPResponseHeader: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if n := newGoroutines(before); len(n) > 0 {
		t.Errorf("Reload left %d goroutines:\n%s", len(n), strings.Join(n, "\n\n"))
	}
	s.Close()
}

// packageGoroutines returns the stacks of the goroutines that run this
// package's code, by goroutine header ("goroutine N [state]:" without the
// state), leaving out the calling test's own.
func packageGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || !strings.Contains(g, "/internal/accessproxy.") {
			continue // the first is the caller's
		}
		id, _, _ := strings.Cut(g, " [")
		out[id] = g
	}
	return out
}

// newGoroutines returns the stacks of package goroutines not in before.
func newGoroutines(before map[string]string) []string {
	var out []string
	for id, g := range packageGoroutines() {
		if _, ok := before[id]; !ok {
			out = append(out, g)
		}
	}
	return out
}
