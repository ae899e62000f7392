package sipedge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/store"
)

// Hangup ends a live call: BYE on both dialogs, or CANCEL while ringing.
func (s *Server) Hangup(id string) error {
	s.calls.mu.Lock()
	c := s.calls.byID[id]
	s.calls.mu.Unlock()
	if c == nil {
		return fmt.Errorf("%w: %s", ErrNoCall, id)
	}
	c.hangup(endedByAdmin, "ended by administrator")
	return nil
}

// MediaTimeout ends a call whose media stopped, recording the disposition
// "media timeout". Wire media.Deps.OnTimeout to it: the relay session's
// label is the call ID. It returns at once: the hang-up (BYE both ways) is
// queued to the server's hang-up workers, so the relay's goroutine never
// waits for a far end, and the calls of an outage end side by side.
func (s *Server) MediaTimeout(id string) error {
	s.calls.mu.Lock()
	c := s.calls.byID[id]
	s.calls.mu.Unlock()
	if c == nil {
		return fmt.Errorf("%w: %s", ErrNoCall, id)
	}
	s.queueHangup(c, dispMediaTimeout)
	return nil
}

// defaultHangupWorkers bounds the hang-ups the server runs at once for
// MediaTimeout. A hang-up frees the call's media and slot at once, then
// holds its worker while it waits up to byeTimeout for the two BYEs to be
// answered: 1,000 calls of an outage whose far ends are gone all end
// within about 40 s, no more than 256 BYE transactions at a time.
const defaultHangupWorkers = 128

// byeTimeout bounds the wait for the answer to a BYE Portico sends.
const byeTimeout = 5 * time.Second

// hangupQueue holds the calls waiting to be hung up by Portico and counts
// the workers doing it (at most max; a worker exits when the queue is
// empty, so none idles).
type hangupQueue struct {
	mu      sync.Mutex
	pending []hangupJob
	workers int
	max     int
}

type hangupJob struct {
	c           *call
	disposition string
}

// queueHangup has c hung up by a hang-up worker, starting one if fewer
// than the maximum run.
func (s *Server) queueHangup(c *call, disposition string) {
	q := &s.hangups
	q.mu.Lock()
	q.pending = append(q.pending, hangupJob{c, disposition})
	start := q.workers < q.max
	if start {
		q.workers++
	}
	q.mu.Unlock()
	if start && !s.spawn(s.hangupWorker) {
		q.mu.Lock()
		q.workers-- // closing: Close hangs up every call itself
		q.mu.Unlock()
	}
}

func (s *Server) hangupWorker() {
	q := &s.hangups
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.workers--
			q.mu.Unlock()
			return
		}
		j := q.pending[0]
		q.pending[0] = hangupJob{}
		q.pending = q.pending[1:]
		q.mu.Unlock()
		j.c.hangup(endedByPortico, j.disposition)
	}
}

// spawn runs f on a goroutine Close waits for. It reports false, and does
// not run f, once Close has begun stopping the server.
func (s *Server) spawn(f func()) bool {
	if !s.enter() {
		return false
	}
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// enter counts one more piece of work Close must wait for (the caller
// calls s.wg.Done when it ends); false once Close is stopping the server.
func (s *Server) enter() bool {
	s.goMu.Lock()
	defer s.goMu.Unlock()
	if s.stopping {
		return false
	}
	s.wg.Add(1)
	return true
}

// bye ends a confirmed call that one side hung up: BYE to the other side.
func (c *call) bye(by string, from *side) {
	c.mu.Lock()
	if c.state == stateEnded {
		c.mu.Unlock()
		return
	}
	c.state = stateEnded
	_, other := c.legs(from)
	req := other.newRequest(sip.BYE)
	c.mu.Unlock()
	c.sendBye(other.sd, req, nil)
	c.finish(by, 200, "normal", nil)
}

// hangup ends the call from Portico's side: BYE both ways once answered,
// CANCEL while ringing.
func (c *call) hangup(by, disposition string) {
	c.mu.Lock()
	switch c.state {
	case stateEnded:
		c.mu.Unlock()
		return
	case stateEarly:
		if c.cancelled == "" {
			c.cancelled = by
		}
		cancel := c.cancel
		c.mu.Unlock()
		if cancel != nil {
			cancel(errors.New(disposition))
		}
		return
	}
	c.state = stateEnded
	r1 := c.a.newRequest(sip.BYE)
	r2 := c.b.newRequest(sip.BYE)
	c.mu.Unlock()
	var wg sync.WaitGroup
	c.sendBye(c.a.sd, r1, &wg)
	c.sendBye(c.b.sd, r2, &wg)
	// The session is over once the BYEs are out (RFC 3261 section
	// 15.1.1): the media and the call's slot are freed now, not after a
	// dead far end's transaction timed out.
	c.finish(by, 200, disposition, nil)
	wg.Wait()
}

// sendBye sends a BYE on a tracked goroutine and waits up to byeTimeout
// for its answer (the server's context: the call itself has ended). wg,
// if not nil, is done when the wait is over.
func (c *call) sendBye(sd *side, req *sip.Request, wg *sync.WaitGroup) {
	if wg != nil {
		wg.Add(1)
	}
	ok := c.s.spawn(func() {
		if wg != nil {
			defer wg.Done()
		}
		ctx, cancel := context.WithTimeout(c.s.ctx, byeTimeout)
		defer cancel()
		if _, err := sd.do(ctx, req); err != nil {
			c.s.log.Debug("bye", "call", c.id, "err", err)
		}
	})
	if !ok && wg != nil {
		wg.Done()
	}
}

// dispositionOf names why a call ended from its final status.
func dispositionOf(code int, reason string) string {
	switch code {
	case 200:
		return "normal"
	case 403:
		return "policy: destination not allowed"
	case 404:
		return "callee not found"
	case 408:
		return "no answer"
	case 480:
		return "callee unavailable"
	case 486, 600:
		return "callee busy"
	case 487:
		return "caller cancelled"
	case 488, 606:
		return "media not acceptable"
	case 503:
		return "service unavailable"
	case 603:
		return "callee declined"
	}
	return strings.ToLower(reason)
}

// finish releases the call's media and writes its history record (once).
func (c *call) finish(by string, code int, reason string, _ error) {
	c.endOnce.Do(func() {
		s := c.s
		c.mu.Lock()
		c.state = stateEnded
		c.endedBy = by
		c.stopSessionTimer()
		c.claimPeerMedia(true)
		hasMedia, id := c.hasMedia, c.mediaID
		c.hasMedia = false
		codecs, answered := c.codecs, c.answered
		c.mu.Unlock()
		c.end() // stops the call's waits; nothing anchors media any more
		var streams []store.StreamStats
		if hasMedia {
			if st, err := s.deps.Media.Release(id); err == nil {
				streams = streamStats(st)
			}
		}
		if c.a != nil {
			s.calls.remove(c)
			s.m.callsActive.Dec()
			if !answered.IsZero() {
				s.callChanged(c) // the peer forgets it
			}
		}
		now := time.Now()
		disp := dispositionOf(code, reason)
		if code == 200 && reason != "" && reason != "normal" {
			disp = reason
		}
		if code == 403 && c.typ != CallGuest {
			disp = "forbidden"
		}
		if strings.HasPrefix(reason, "media: ") || strings.HasPrefix(reason, "capacity: ") || strings.HasPrefix(reason, "policy: ") {
			disp = reason
		}
		rec := store.CallRecord{ID: c.id, Protocol: "sip", CallType: c.typ, From: c.from, To: c.to, SourceAddr: c.source,
			StartedAt: c.started, AnsweredAt: answered, EndedAt: now, EndedBy: by, Status: code, Disposition: disp,
			Codecs: codecs, Streams: streams}
		if !answered.IsZero() {
			rec.DurationMs = now.Sub(answered).Milliseconds()
		}
		s.m.calls.WithLabelValues(c.typ, strconv.FormatBool(!answered.IsZero())).Inc()
		s.recordCall(rec)
		close(c.done)
	})
}
