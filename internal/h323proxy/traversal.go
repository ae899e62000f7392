package h323proxy

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// sciRetries and sciInterval pace the SCI retransmissions (H.225.0 RAS
// over UDP is retried by the sender).
const (
	sciRetries  = 3
	sciInterval = 2 * time.Second
)

// Connect implements the call-signalling proxy's Traversal: it asks the
// H.460.18 endpoint ep to open a TCP call-signalling connection to
// Portico's outside listener for callID (an SCI carrying an
// IncomingCallIndication, H.460.18 §7.2) and returns that connection once
// the listener passed it to Arrived. It fails when the endpoint is gone or
// not H.460.18, does not answer the SCI, does not connect within
// RequestTimeout of answering, or ctx ends first.
func (s *Server) Connect(ctx context.Context, ep Endpoint, callID [16]byte) (net.Conn, error) {
	s.mu.Lock()
	r := s.regs.byOut[ep.ID]
	if r == nil || !r.h46018 {
		s.mu.Unlock()
		return nil, ErrNotTraversal
	}
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if _, busy := s.waiters[callID]; busy {
		s.mu.Unlock()
		return nil, fmt.Errorf("h323proxy: connect: call %x is already waiting", callID)
	}
	bound := make(chan net.Conn, 1)
	s.waiters[callID] = bound
	p := &pending{kind: h225.RasMessage_ServiceControlIndication, reg: r, scr: make(chan struct{})}
	seq, ok := s.track(false, p)
	if !ok {
		delete(s.waiters, callID)
		s.mu.Unlock()
		return nil, fmt.Errorf("h323proxy: connect: too many requests in flight")
	}
	g, err := ras.IncomingCall(ras.IncomingCallIndication{CallSignal: s.extSignal(), CallID: callID[:]})
	if err != nil {
		delete(s.waiters, callID)
		s.untrack(s.pendingOut, uint16(seq))
		s.mu.Unlock()
		return nil, fmt.Errorf("h323proxy: connect: %w", err)
	}
	sci := ras.SCI(int(seq), ras.Supported(g))
	dst, connectWait := r.src, s.cfg.RequestTimeout
	s.send(External, dst, sci)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, callID)
		if s.pendingOut[uint16(seq)] == p {
			s.untrack(s.pendingOut, uint16(seq))
		}
		s.mu.Unlock()
	}()

	t := time.NewTimer(sciInterval)
	defer t.Stop()
	answered, scr := false, p.scr
	for tries := 1; ; {
		select {
		case c := <-bound:
			s.m.traversal.WithLabelValues("bound").Inc()
			return c, nil
		case <-scr:
			// Answered: the endpoint has RequestTimeout to connect.
			answered, scr = true, nil
			t.Reset(connectWait)
		case <-t.C:
			if answered {
				s.m.traversal.WithLabelValues("no_connection").Inc()
				return nil, ErrNoConnection
			}
			if tries >= sciRetries {
				s.m.traversal.WithLabelValues("no_answer").Inc()
				return nil, ErrNoAnswer
			}
			tries++
			s.mu.Lock()
			p.expires = s.now().Add(connectWait)
			s.send(External, dst, sci)
			s.mu.Unlock()
			t.Reset(sciInterval)
		case <-ctx.Done():
			s.m.traversal.WithLabelValues("timeout").Inc()
			return nil, ctx.Err()
		case <-s.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// Arrived hands Connect the TCP connection an H.460.18 endpoint opened for
// callID (the callIdentifier of the Facility it sent first, see
// FacilityCallID). It reports false when no Connect waits for the call:
// the caller then closes c.
func (s *Server) Arrived(callID [16]byte, c net.Conn) bool {
	s.mu.Lock()
	ch := s.waiters[callID]
	delete(s.waiters, callID)
	s.mu.Unlock()
	if ch == nil {
		return false
	}
	ch <- c
	return true
}

// FacilityCallID returns the callIdentifier of a Q.931 Facility message
// (a TPKT payload) carrying an H.225.0 Facility-UUIE: the message an
// H.460.18 endpoint sends first on the connection an SCI asked for.
func FacilityCallID(payload []byte) ([16]byte, bool) {
	var id [16]byte
	m, err := q931.Parse(payload)
	if err != nil || m.Type != q931.Facility {
		return id, false
	}
	uu, err := m.UserUser()
	if err != nil {
		return id, false
	}
	var ui h225.H323UserInformation
	if ui.Unmarshal(uu) != nil {
		return id, false
	}
	body := ui.H323UuPdu.H323MessageBody
	if body.Choice != h225.H323UUPDUH323MessageBody_Facility || body.Facility == nil || body.Facility.CallIdentifier == nil ||
		len(body.Facility.CallIdentifier.Guid) != 16 {
		return id, false
	}
	copy(id[:], body.Facility.CallIdentifier.Guid)
	return id, true
}
