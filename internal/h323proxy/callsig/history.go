package callsig

import (
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// History records wait in a queue of historyQueue for one writer
// goroutine, which hands them to the store in batches: what arrives within
// historyLinger of a batch's first record, up to historyBatch. A call's
// goroutine never waits for the store (a slow or absent database delays
// history, not calls), and the store takes many records per transaction,
// which costs it a fraction of one transaction each. A record that finds
// the queue full is dropped and counted in HistoryDropped.
const (
	historyQueue  = 4096
	historyBatch  = 256
	historyLinger = 50 * time.Millisecond
)

// startHistory starts the writer (once, with the first record).
func (s *Server) startHistory() {
	s.hist = make(chan store.CallRecord, historyQueue)
	s.histDone = make(chan struct{})
	go func() {
		defer close(s.histDone)
		for r := range s.hist {
			batch := []store.CallRecord{r}
			linger := time.NewTimer(historyLinger)
		more:
			for len(batch) < historyBatch {
				select {
				case r, ok := <-s.hist:
					if !ok {
						break more
					}
					batch = append(batch, r)
				case <-linger.C:
					break more
				}
			}
			linger.Stop()
			if s.deps.HistoryBatch != nil {
				s.deps.HistoryBatch(batch)
				continue
			}
			for _, r := range batch {
				s.deps.History(r)
			}
		}
	}()
}

// record queues r for the writer, or drops it when the queue is full.
func (s *Server) record(r store.CallRecord) {
	if s.deps.History == nil && s.deps.HistoryBatch == nil {
		return
	}
	s.histStart.Do(s.startHistory)
	select {
	case s.hist <- r:
	default:
		s.HistoryDropped.Add(1)
	}
}

// stopHistory writes what is queued and stops the writer; the calls that
// record must have finished.
func (s *Server) stopHistory() {
	s.histStart.Do(func() {}) // none starts after this
	s.histStop.Do(func() {
		if s.hist != nil {
			close(s.hist)
			<-s.histDone
		}
	})
}
