package accessproxy

import (
	"runtime"
	"testing"
	"time"
)

// TestNewStartsNoGoroutine: New only validates and builds (the app builds a
// throwaway server to validate every configuration change); Reload leaves
// no goroutine waiting either.
func TestNewStartsNoGoroutine(t *testing.T) {
	p := newPKI(t)
	before := runtime.NumGoroutine()
	s, err := New(Config{Routes: []Route{{Name: "a", Action: "http", Upstream: "http://127.0.0.1:1"}}}, Deps{Certs: p.store})
	if err != nil {
		t.Fatal(err)
	}
	if after := runtime.NumGoroutine(); after != before {
		t.Errorf("New started %d goroutines", after-before)
	}
	if _, err := s.Reload(Config{Timeouts: Timeouts{HTTPResponseHeader: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if after := runtime.NumGoroutine(); after != before {
		t.Errorf("Reload left %d goroutines", after-before)
	}
	s.Close()
}
