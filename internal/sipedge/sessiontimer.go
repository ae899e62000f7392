package sipedge

import (
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028). Portico passes the negotiation (Session-Expires,
// Min-SE, Require and Supported: timer, and 422 with its Min-SE) between a
// call's two dialogs and does not refresh sessions itself: the endpoints do,
// with re-INVITE or UPDATE through it. It watches the negotiated interval,
// though. A call whose session is not refreshed within it has lost an
// endpoint (a phone switched off, a NAT binding gone), and Portico ends it
// with BYE both ways, freeing the relay's ports; the disposition is
// dispSessionExpired. The interval is the one the endpoints agreed on, as
// the 2xx carries it.

// dispSessionExpired is the disposition of a call ended by its session timer.
const dispSessionExpired = "session expired"

// maxSessionInterval bounds a Session-Expires value Portico acts on.
const maxSessionInterval = 24 * time.Hour

// sessionInterval returns the delta-seconds of m's Session-Expires header
// (compact form x), or 0 when m has none or it does not parse.
func sessionInterval(m headerList) time.Duration {
	h := firstHeader(m, "Session-Expires")
	if h == nil {
		h = firstHeader(m, "x")
	}
	if h == nil {
		return 0
	}
	v, _, _ := strings.Cut(h.Value(), ";")
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil || n == 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, maxSessionInterval)
}

// copySessionHeaders copies the session-timer headers of a response from
// one dialog into its relayed copy for the other: Session-Expires (or x)
// and Require of a 2xx, Min-SE of a 422.
func copySessionHeaders(dst, res *sip.Response) {
	copyHeaders(dst, res, "Session-Expires", "x", "Require", "Min-SE")
}

// watchSession (re)arms c's session timer from a 2xx that established or
// refreshed the session: for res's Session-Expires, or off when res has
// none (RFC 4028 section 7.2 and 9: no Session-Expires in the 2xx, no
// session timer). c.mu must be held.
func (c *call) watchSession(res *sip.Response) {
	// Stopping bumps the generation, so a timer that has already fired and
	// waits for c.mu gives up, also when this 2xx turns the watch off.
	c.stopSessionTimer()
	se := sessionInterval(res)
	if se == 0 || c.state == stateEnded {
		return
	}
	gen := c.sessionGen
	c.sessionTimer = time.AfterFunc(se, func() {
		c.mu.Lock()
		current := c.sessionGen == gen && c.state == stateConfirmed
		c.mu.Unlock()
		if !current {
			return // refreshed (or ended) meanwhile
		}
		c.s.log.Info("session timer expired", "call", c.id, "interval", se)
		c.s.spawn(func() { c.hangup(endedByPortico, dispSessionExpired) })
	})
}

// stopSessionTimer stops c's session timer. c.mu must be held.
func (c *call) stopSessionTimer() {
	c.sessionGen++
	if c.sessionTimer != nil {
		c.sessionTimer.Stop()
		c.sessionTimer = nil
	}
}
