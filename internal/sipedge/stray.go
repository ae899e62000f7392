package sipedge

import (
	"context"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// strayDialogs ends dialogs that a 2xx opens for an INVITE no call knows:
// a call that was still ringing on an HA peer that failed (its dialogs
// are not replicated before the answer), or one Portico already gave up
// on. Without an ACK the callee retransmits its 2xx for 64*T1 and then
// hangs up by itself; Portico acknowledges it and sends BYE, as a UAC
// that does not want the session does (RFC 3261 section 13.2.2.4).
//
// Only the internal side does this: it faces the call servers. Outside,
// a forged 2xx with any Contact and Record-Route would turn Portico into
// a source of ACKs and BYEs toward any address, so a stray 2xx there is
// dropped.
type strayDialogs struct {
	mu   sync.Mutex
	seen map[string]time.Time // Call-ID -> when its BYE was sent
}

// strayBound bounds the dialogs tracked (a BYE each) at once; past it a
// stray 2xx is only acknowledged.
const strayBound = 256

// strayHold is how long a stray dialog is remembered: its 2xx
// retransmissions get the ACK again, not another BYE.
const strayHold = 32 * time.Second

// first reports whether callID is new, and records it.
func (d *strayDialogs) first(callID string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = make(map[string]time.Time)
	}
	if at, ok := d.seen[callID]; ok && now.Sub(at) < strayHold {
		return false
	}
	if len(d.seen) >= strayBound {
		for id, at := range d.seen {
			if now.Sub(at) >= strayHold {
				delete(d.seen, id)
			}
		}
		if len(d.seen) >= strayBound {
			return false
		}
	}
	d.seen[callID] = now
	return true
}

// endStrayDialog acknowledges a 2xx no call knows and, the first time its
// Call-ID is seen, ends the dialog with BYE. r must be a 2xx to an INVITE
// with Call-ID and From (strayResponse checks).
func (s *Server) endStrayDialog(sd *side, r *sip.Response) {
	via := r.Via()
	if sd != s.int || via == nil || via.Host != sd.host {
		return // not to a request this side sent
	}
	fromTag, _ := r.From().Params.Get("tag")
	l := &leg{
		sd:        sd,
		callID:    string(*r.CallID()),
		localTag:  fromTag,
		local:     r.From().Address,
		localName: r.From().DisplayName,
		cseq:      r.CSeq().SeqNo,
		transport: via.Transport,
	}
	if to := r.To(); to != nil {
		l.remote, l.remoteName = to.Address, to.DisplayName
	}
	if r.Contact() == nil {
		return // no target to acknowledge
	}
	l.learn(r)
	ack := l.newRequest(sip.ACK)
	ack.CSeq().SeqNo = r.CSeq().SeqNo
	_ = sd.write(ack)
	s.m.strayDialogs.Inc()
	if !s.strays.first(l.callID, time.Now()) {
		return
	}
	bye := l.newRequest(sip.BYE)
	s.log.Info("2xx for an INVITE no call knows: acknowledged and ended", "side", sd.name, "call_id", l.callID, "to", l.remote.String())
	s.spawn(func() {
		ctx, cancel := context.WithTimeout(s.ctx, strayHold)
		defer cancel()
		if res, err := sd.do(ctx, bye); err != nil {
			s.log.Debug("BYE of a stray dialog not answered", "call_id", l.callID, "err", err)
		} else if res.StatusCode >= 300 {
			s.log.Debug("BYE of a stray dialog refused", "call_id", l.callID, "status", res.StatusCode)
		}
	})
}
