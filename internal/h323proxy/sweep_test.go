package h323proxy

import (
	"net/netip"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// TestSweepDoesNotBlockKeepAlives: while the sweep is stuck sending (the
// test's write hook holds its refresh RRQ toward the inside, as a full
// socket buffer or a slow kernel would), a keep-alive from another
// endpoint is still answered. The sweep collects under the server's lock
// and sends after it; it used to send with the lock held, so the read
// loop waited for every send of the walk.
func TestSweepDoesNotBlockKeepAlives(t *testing.T) {
	h := newHarness(t, nil)
	rcf, _ := h.register("erin", false)
	outID := bmp(rcf.EndpointIdentifier)

	entered, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	hook := func(side string, _ netip.AddrPort, _ []byte) {
		if side == Internal {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
	}
	h.s.writeHook.Store(&hook)
	// The inside granted 60 s: past two thirds the sweep refreshes it.
	now := h.advance(41e9)
	go h.s.sweep(now)
	<-entered

	e := endpoint("erin", false)
	e.KeepAlive, e.EndpointID = true, outID
	h.ep.send(h.ext, ras.RRQ(3, e))
	_, ka := h.ep.expect(h225.RasMessage_RegistrationConfirm)
	if bmp(ka.RegistrationConfirm.EndpointIdentifier) != outID {
		t.Errorf("keep-alive RCF endpointIdentifier %q, want %q", bmp(ka.RegistrationConfirm.EndpointIdentifier), outID)
	}
}
