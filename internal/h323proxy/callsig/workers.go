package callsig

import "time"

// workerIdle is how long a call goroutine waits for more work before it
// ends.
const workerIdle = 10 * time.Second

// spawn runs f on a call goroutine that waits for work, or on a new one
// when none waits. A call's goroutines decode and rewrite deeply nested
// ASN.1 values and their stacks grow to tens of KiB; a new goroutine
// starts small and copies its stack each time it doubles (7 % of the
// daemon's CPU per call at a thousand calls a second), whereas one that
// served a call before keeps its stack. Goroutines that wait longer than
// workerIdle, or outlive Close, end; Close waits for them (s.wg).
func (s *Server) spawn(f func()) {
	select {
	case s.work <- f:
		return
	default:
	}
	s.wg.Add(1)
	go s.worker(f)
}

func (s *Server) worker(f func()) {
	defer s.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		f = nil // what the last call held is not kept while waiting
		idle.Reset(workerIdle)
		select {
		case f = <-s.work:
		case <-idle.C:
			return
		case <-s.ctx.Done():
			return
		}
	}
}
