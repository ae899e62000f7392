package sipedge

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestHandlerPool: sequential requests reuse one goroutine, concurrent
// ones start more without waiting for each other, at most maxIdle stay,
// and close ends the idle ones; a stopped owner runs the handler inline.
func TestHandlerPool(t *testing.T) {
	var wg sync.WaitGroup
	var spawned, handled atomic.Int32
	stopping := atomic.Bool{}
	p := &handlerPool{maxIdle: 2}
	p.spawn = func(f func()) bool {
		if stopping.Load() {
			return false
		}
		spawned.Add(1)
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
		return true
	}
	release := make(chan struct{})
	var block atomic.Bool
	var started sync.WaitGroup
	p.handle = func(handlerJob) {
		handled.Add(1)
		if block.Load() {
			started.Done()
			<-release
		}
	}
	for range 5 {
		p.run(handlerJob{})
	}
	if n := spawned.Load(); n != 1 {
		t.Errorf("5 requests one after another started %d goroutines, want 1", n)
	}
	// Four at once: all run together (none waits for another).
	block.Store(true)
	started.Add(4)
	var callers sync.WaitGroup
	for range 4 {
		callers.Add(1)
		go func() { defer callers.Done(); p.run(handlerJob{}) }()
	}
	started.Wait()
	close(release)
	callers.Wait()
	block.Store(false)
	if n := spawned.Load(); n != 4 {
		t.Errorf("4 concurrent requests with one idle goroutine: %d goroutines started in all, want 4", n)
	}
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle != 2 {
		t.Errorf("%d idle goroutines kept, want maxIdle 2", idle)
	}
	p.close()
	wg.Wait() // every pool goroutine ended
	stopping.Store(true)
	before := handled.Load()
	p.run(handlerJob{})
	if handled.Load() != before+1 {
		t.Error("after close, a request was not handled inline")
	}
	p.close()
}
