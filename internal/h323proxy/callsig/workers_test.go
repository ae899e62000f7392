package callsig

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// goid is the calling goroutine's number, from its stack trace header.
func goid() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	f := bytes.Fields(b)
	if len(f) < 2 {
		return ""
	}
	return string(f[1])
}

// TestSpawnReusesGoroutines: work handed to spawn runs on a goroutine
// that finished earlier work and waits for more, and Close ends the
// waiting goroutines.
func TestSpawnReusesGoroutines(t *testing.T) {
	p := startPortico(t, Config{})
	s := p.srv
	ran := make(chan string)
	s.spawn(func() { ran <- goid() })
	first := <-ran
	reused := false
	for range 100 {
		time.Sleep(time.Millisecond) // the goroutine gets to wait for work
		s.spawn(func() { ran <- goid() })
		if <-ran == first {
			reused = true
			break
		}
	}
	if !reused {
		t.Fatal("spawn never ran work on the goroutine that ran the first")
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the waiting goroutines")
	}
}
