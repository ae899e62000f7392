package h323proxy

import (
	"errors"
	"net/netip"
	"testing"
	"time"

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

	// entered keeps the signal: the background sweep (once a second, on
	// the test's clock) may be the one that gets stuck first.
	entered, release := make(chan struct{}, 1), make(chan struct{})
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
	select {
	case <-entered:
	case <-time.After(10 * time.Second): // only stops a hung test
		t.Fatal("the sweep sent no refresh")
	}

	e := endpoint("erin", false)
	e.KeepAlive, e.EndpointID = true, outID
	h.ep.send(h.ext, ras.RRQ(3, e))
	_, ka := h.ep.expect(h225.RasMessage_RegistrationConfirm)
	if bmp(ka.RegistrationConfirm.EndpointIdentifier) != outID {
		t.Errorf("keep-alive RCF endpointIdentifier %q, want %q", bmp(ka.RegistrationConfirm.EndpointIdentifier), outID)
	}
}

// TestUnregisterByAdministrator: Unregister sends URQ to the inside
// gatekeeper (with the inside endpointIdentifier) and to the endpoint
// (with its outside one), drops the registration and records why; an
// alias not registered is ErrNotRegistered.
func TestUnregisterByAdministrator(t *testing.T) {
	h := newHarness(t, nil)
	rcf, _ := h.register("gail", false)
	if n, err := h.s.Unregister("gail"); n != 1 || err != nil {
		t.Fatalf("Unregister = %d, %v", n, err)
	}
	_, m := h.gk.expect(h225.RasMessage_UnregistrationRequest)
	if id := bmp(m.UnregistrationRequest.EndpointIdentifier); id != insideEPID {
		t.Errorf("inside URQ endpointIdentifier %q, want %q", id, insideEPID)
	}
	from, m := h.ep.expect(h225.RasMessage_UnregistrationRequest)
	if id := bmp(m.UnregistrationRequest.EndpointIdentifier); id != bmp(rcf.EndpointIdentifier) || from != h.ext {
		t.Errorf("outside URQ endpointIdentifier %q from %v", id, from)
	}
	// The endpoint's UCF is taken and not relayed inside.
	h.ep.send(h.ext, ras.UCF(m.UnregistrationRequest))
	if _, ok := h.s.Outside("gail"); ok {
		t.Error("registration kept")
	}
	if _, err := h.s.Unregister("gail"); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("second Unregister = %v, want ErrNotRegistered", err)
	}
	var found bool
	for i := 0; i < 100 && !found; i++ {
		h.hist.mu.Lock()
		for _, ev := range h.hist.evs {
			found = found || ev.Kind == "unregistered" && ev.Reason == "unregistered by an administrator"
		}
		h.hist.mu.Unlock()
		if !found {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !found {
		t.Error("no history event")
	}
}
