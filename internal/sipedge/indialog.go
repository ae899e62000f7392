package sipedge

import (
	"context"

	"github.com/emiago/sipgo/sip"
)

func (c *call) idxOf(sd *side) int {
	if c.a.sd == sd {
		return c.a.idx
	}
	return c.b.idx
}

// reinvite relays an in-dialog INVITE (hold, resume, streams added or
// removed) to the other leg, anchoring the new description.
func (c *call) reinvite(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	s := c.s
	s.respond(sd, tx, req, 100, "Trying")
	c.mu.Lock()
	if c.state != stateConfirmed {
		c.mu.Unlock()
		s.respond(sd, tx, req, 491, "Request Pending")
		return
	}
	this, other := c.legs(sd)
	var body []byte
	if isSDP(req) {
		out, err := c.anchor(this.idx, req.Body())
		if err != nil {
			c.mu.Unlock()
			s.respond(sd, tx, req, 488, "Not Acceptable Here")
			return
		}
		body = out
	}
	inv := other.newRequest(sip.INVITE)
	copyHeaders(inv, req, "Supported", "Allow", "Session-Expires", "x", "Min-SE")
	if body != nil {
		inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		inv.SetBody(body)
	}
	other.invite = inv
	other.inviteHadBody = body != nil
	c.mu.Unlock()

	res, err := c.relay(other, inv)
	if err != nil {
		c.failRelayed(sd, tx, req)
		return
	}
	c.mu.Lock()
	if c.state == stateEnded {
		// The call ended while the re-INVITE was out (a BYE crossed it):
		// acknowledge a 2xx, anchor nothing.
		var ack *sip.Request
		if res.StatusCode < 300 {
			ack = other.newRequest(sip.ACK)
			ack.CSeq().SeqNo = res.CSeq().SeqNo
		}
		c.mu.Unlock()
		if ack != nil {
			other.sd.write(ack)
		}
		s.respond(sd, tx, req, 487, "Request Terminated")
		return
	}
	var back []byte
	if res.StatusCode < 300 {
		other.learn(res)
		c.watchSession(res) // a re-INVITE refreshes the session
		if isSDP(res) {
			if out, err := c.anchor(other.idx, res.Body()); err == nil {
				back = out
			}
		}
		ack := other.newRequest(sip.ACK)
		ack.CSeq().SeqNo = res.CSeq().SeqNo
		if other.inviteHadBody {
			other.ack = ack
		} else {
			other.pendingACK = ack
		}
		c.mu.Unlock()
		if other.inviteHadBody {
			other.sd.write(ack)
		}
		s.callChanged(c)
	} else {
		c.mu.Unlock()
	}
	r := sip.NewResponseFromRequest(req, res.StatusCode, reasonPhrase(res.StatusCode), back)
	r.AppendHeader(&sip.ContactHeader{Address: sd.contact(this.transport, "")})
	copySessionHeaders(r, res)
	if back != nil {
		r.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	if res.StatusCode < 300 {
		acked := c.expectACK(this, r)
		tx.Respond(r)
		c.retransmit2xx(sd, this, acked, r)
	} else {
		tx.Respond(r)
	}
}

// relay sends an in-dialog request on leg l and waits for its final
// response, no longer than DefaultTransactionTimeout or the call.
func (c *call) relay(l *leg, req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(c.ctx, DefaultTransactionTimeout)
	defer cancel()
	return l.sd.do(ctx, req)
}

// failRelayed answers a request whose relayed copy got no final response:
// 487 when the call ended meanwhile (RFC 3261 section 15.1.2), else 408.
func (c *call) failRelayed(sd *side, tx sip.ServerTransaction, req *sip.Request) {
	if c.ctx.Err() != nil {
		c.s.respond(sd, tx, req, 487, "Request Terminated")
		return
	}
	c.s.respond(sd, tx, req, 408, "Request Timeout")
}

// handlePrack answers PRACK locally: reliable provisionals are terminated
// per leg.
func (s *Server) handlePrack(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	s.respond(sd, tx, req, 200, "OK")
}

// handleInDialog relays BYE, INFO, UPDATE, MESSAGE, NOTIFY ... within a call.
func (s *Server) handleInDialog(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	cid := req.CallID()
	to := req.To()
	if cid == nil || to == nil || req.CSeq() == nil {
		s.respond(sd, tx, req, 400, "Bad Request")
		return
	}
	c := s.findCall(sd, req)
	if c == nil || !to.Params.Has("tag") {
		s.respond(sd, tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	if req.Method == sip.BYE {
		s.respond(sd, tx, req, 200, "OK")
		by := endedByCallee
		if sd == c.a.sd {
			by = endedByCaller
		}
		c.bye(by, sd)
		return
	}
	c.mu.Lock()
	this, other := c.legs(sd)
	if other.remoteTag == "" {
		c.mu.Unlock()
		s.respond(sd, tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	out := other.newRequest(req.Method)
	copyHeaders(out, req, "Content-Type", "Content-Disposition", "Event", "Subscription-State", "Info-Package", "Recv-Info", "Session-Expires", "x", "Min-SE", "Supported")
	body := req.Body()
	if isSDP(req) {
		b, err := c.anchor(this.idx, body)
		if err != nil {
			c.mu.Unlock()
			s.respond(sd, tx, req, 488, "Not Acceptable Here")
			return
		}
		body = b
	}
	out.SetBody(body)
	c.mu.Unlock()
	res, err := c.relay(other, out)
	if err != nil {
		c.failRelayed(sd, tx, req)
		return
	}
	if req.Method == sip.UPDATE && res.StatusCode >= 200 && res.StatusCode < 300 {
		c.mu.Lock()
		c.watchSession(res) // an UPDATE refreshes the session
		c.mu.Unlock()
	}
	var back []byte
	if isSDP(res) {
		c.mu.Lock()
		if b, err := c.anchor(other.idx, res.Body()); err == nil {
			back = b
		}
		c.mu.Unlock()
	} else if len(res.Body()) > 0 && !isSDP(res) {
		back = res.Body()
	}
	r := sip.NewResponseFromRequest(req, res.StatusCode, reasonPhrase(res.StatusCode), back)
	if back != nil {
		copyHeaders(r, res, "Content-Type")
	}
	copySessionHeaders(r, res)
	tx.Respond(r)
}
