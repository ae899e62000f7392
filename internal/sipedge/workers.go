package sipedge

import (
	"sync"

	"github.com/emiago/sipgo/sip"
)

// handlerPool runs request handlers on goroutines that handled earlier
// requests. sipgo starts a goroutine per request with a small stack, and a
// call's handling (SDP parsing, relay allocation, the outgoing transaction
// and its contexts) runs deep enough to grow that stack two or three
// times, each growth a copy of the whole stack. A pool goroutine keeps the
// stack it grew (until the collector shrinks an idle one), so most
// requests run without growing one.
//
// run is synchronous: sipgo ends the server transaction once the handler
// returns, so the request's goroutine waits for its handler to finish on
// the pool goroutine. A request that finds no idle goroutine starts one;
// the pool never queues, so it bounds nothing and delays nothing. At most
// maxIdle goroutines wait for work; the idle ones are kept last in, first
// out, so that the busiest few stay warm. Idle goroutines end when the
// pool is closed; a busy one ends when its handler returns.
type handlerPool struct {
	// handle handles one request (Server.dispatch).
	handle func(handlerJob)
	// spawn starts a goroutine its owner waits for (Server.spawn); false
	// once the server is stopping, and the handler then runs inline.
	spawn   func(func()) bool
	maxIdle int

	mu     sync.Mutex
	idle   []*poolWorker // under mu; a stack
	closed bool          // under mu
}

// defaultIdleHandlers bounds the idle handler goroutines: above the
// requests a busy edge handles at once, far below what they would cost
// in memory (each holds a stack of 8 to 64 KB).
const defaultIdleHandlers = 256

// handlerJob is one request for a pool goroutine, passed by value.
type handlerJob struct {
	f   func(sd *side, req *sip.Request, tx sip.ServerTransaction)
	sd  *side
	req *sip.Request
	tx  sip.ServerTransaction
}

type poolWorker struct {
	jobs chan handlerJob
	done chan struct{}
}

// run calls handle(j) on a pool goroutine and returns when it returned.
func (p *handlerPool) run(j handlerJob) {
	p.mu.Lock()
	var w *poolWorker
	if n := len(p.idle); n > 0 && !p.closed {
		w = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
	}
	p.mu.Unlock()
	if w == nil {
		w = &poolWorker{jobs: make(chan handlerJob), done: make(chan struct{})}
		if !p.spawn(w.loop(p)) {
			p.handle(j)
			return
		}
	}
	w.jobs <- j
	<-w.done
}

// loop returns the worker's goroutine body: handle a job, go back on the
// idle stack, report the job done, wait for the next one.
//
// It is idle before the job's caller hears it is done, so that a caller
// that sends requests one after another finds it idle. Both channels are
// unbuffered: a caller that takes it from the idle stack meanwhile blocks
// sending its job until the done of the previous one was received, so no
// caller receives another's done.
func (w *poolWorker) loop(p *handlerPool) func() {
	return func() {
		for j := range w.jobs {
			p.handle(j)
			p.mu.Lock()
			keep := !p.closed && len(p.idle) < p.maxIdle
			if keep {
				p.idle = append(p.idle, w)
			}
			p.mu.Unlock()
			w.done <- struct{}{}
			if !keep {
				return
			}
		}
	}
}

// close ends the idle goroutines; busy ones end when their handler
// returns. Safe to call more than once.
func (p *handlerPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, w := range idle {
		close(w.jobs)
	}
}
