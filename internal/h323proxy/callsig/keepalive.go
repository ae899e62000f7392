package callsig

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// KeepAlive is how a call keeps its outside connections alive.
type KeepAlive struct {
	// Signalling is "tpkt" (an empty TPKT packet), "facility" (a Facility
	// with an empty Facility-UUIE) or "none"; H245 "tpkt" or "none", for
	// separate H.245 connections.
	Signalling, H245 string
	// Interval between keep-alives; 0: none.
	Interval time.Duration
	// NATed marks an outside endpoint that cannot be connected to (an
	// H.460.18 endpoint): an h245Address it announces is answered with a
	// Facility startH245 naming Portico, and it connects to Portico.
	NATed bool
	// Client marks a traversal zone's server (Portico is its H.460.18
	// client): every H.245 connection Portico opens to it starts with the
	// H.460.18 genericIndication naming the call.
	Client bool
}

// Keep-alive methods of KeepAlive.
const (
	keepAliveTPKT     = "tpkt"
	keepAliveFacility = "facility"
)

// emptyTPKT is a TPKT packet with no payload, which H.225.0 §7.2.2 lets
// a receiver ignore: the H.460.18 keep-alive.
var emptyTPKT = []byte{3, 0, 0, 4}

// startKeepAlive asks Deps.KeepAlive how to keep the outside connection
// alive and, when it says so, sends the keep-alive on it every interval
// until the call ends.
func (c *call) startKeepAlive() {
	s := c.srv
	if s.deps.KeepAlive == nil || c.done == nil {
		return
	}
	ka, ok := s.deps.KeepAlive(c.legs[Outside].remote)
	if !ok {
		return
	}
	c.mu.Lock()
	c.ka = ka
	c.mu.Unlock()
	if ka.Interval <= 0 {
		return
	}
	var frame []byte
	switch ka.Signalling {
	case keepAliveTPKT:
		frame = emptyTPKT
	case keepAliveFacility:
		p := Facility(c.crv, c.caller == Outside, c.id)
		if p == nil {
			return
		}
		frame = append([]byte{3, 0, byte((len(p) + 4) >> 8), byte(len(p) + 4)}, p...)
	default:
		return
	}
	l := c.legs[Outside]
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(ka.Interval)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-t.C:
				l.wmu.Lock()
				l.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, err := l.conn.Write(frame)
				l.wmu.Unlock()
				if err != nil {
					return
				}
				s.KeepAlives.Add(1)
			}
		}
	}()
}

// Facility returns a Q.931 Facility whose Facility-UUIE carries reason
// undefinedReason and callID (none unless 16 octets), nothing else: the
// empty Facility sent as a keep-alive, and the message an H.460.18
// endpoint binds an SCI's connection to its call with (H.460.18 §8.2).
// fromDest is set when the sender speaks for the callee.
func Facility(crv uint32, fromDest bool, callID []byte) []byte {
	return facility(crv, fromDest, callID, netip.AddrPort{})
}

// facility is Facility, with reason startH245 and h245 as h245Address
// when h245 is valid: the request that an endpoint behind NAT open the
// H.245 connection to Portico (H.460.18 §8.3).
func facility(crv uint32, fromDest bool, callID []byte, h245 netip.AddrPort) []byte {
	f := &h225.FacilityUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		Reason: h225.FacilityReason{Choice: h225.FacilityReason_UndefinedReason}}
	if h245.IsValid() {
		a := ras.Transport(h245)
		f.Reason.Choice, f.H245Address = h225.FacilityReason_StartH245, &a
	}
	if len(callID) == 16 {
		f.CallIdentifier = &h225.CallIdentifier{Guid: h225.GloballyUniqueID(callID)}
	}
	uu := &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{
		H323MessageBody: h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_Facility, Facility: f}}}
	b, err := uu.Marshal()
	if err != nil {
		return nil
	}
	m := q931.Message{Type: q931.Facility, CallRefLen: 2, CallRef: crv, FromDestination: fromDest}
	m.SetUserUser(b)
	out, err := m.Append(nil)
	if err != nil {
		return nil
	}
	return out
}

// dialCallee connects to an outside callee that is not reached through
// the traversal server: with its Dial when it has one (a traversal zone,
// whose name then labels the record), else at its call-signalling
// address.
func (c *call) dialCallee(ctx context.Context, ep Endpoint) (net.Conn, error) {
	if ep.CallType != "" {
		c.rec.CallType = ep.CallType
	}
	if ep.Dial == nil {
		return c.srv.dial(ctx, Outside, ep.CallSignal)
	}
	if len(c.id) != 16 {
		return nil, ErrNoRoute
	}
	return ep.Dial(ctx, [16]byte(c.id))
}
