package h323test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// The gatekeeper and endpoints here stand in for real H.323 products.

// TestScriptedCallee calls an alias the gatekeeper answers itself.
func TestScriptedCallee(t *testing.T) {
	for _, opts := range []CallOptions{{FastStart: true}, {H245: Tunnelled}, {H245: Separate}} {
		t.Run(opts.H245.String()+map[bool]string{true: "+faststart"}[opts.FastStart], func(t *testing.T) {
			ctx := testCtx(t)
			gk := NewGatekeeper(t, GatekeeperConfig{Callees: []string{"9000"}, Answer: AnswerConfig{Echo: true}})
			ep := NewEndpoint(t, EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr()})
			if err := ep.Register(ctx); err != nil {
				t.Fatal(err)
			}
			call, err := ep.Call(ctx, "9000", opts)
			if err != nil {
				t.Fatal(err)
			}
			in, err := gk.Incoming(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := call.WaitMedia(ctx); err != nil {
				t.Fatal(err)
			}
			if err := in.WaitMedia(ctx); err != nil {
				t.Fatal(err)
			}
			if err := call.SendRTP(3); err != nil {
				t.Fatal(err)
			}
			// the scripted callee echoes: the caller gets its packets back
			if err := call.WaitReceived(ctx, 3); err != nil {
				t.Fatal(err)
			}
			for _, st := range in.Media() {
				if st.Echoed < 3 {
					t.Errorf("%s: callee echoed %d", st.Kind, st.Echoed)
				}
			}
			call.Hangup()
			<-in.Done()
		})
	}
}

func TestCallRefused(t *testing.T) {
	ctx := testCtx(t)
	gk := NewGatekeeper(t, GatekeeperConfig{})
	a := NewEndpoint(t, EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr()})
	b := NewEndpoint(t, EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(),
		Answer: AnswerConfig{Reject: h225.ReleaseCompleteReason_DestinationRejection + 1}})
	for _, ep := range []*Endpoint{a, b} {
		if err := ep.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("unknown alias", func(t *testing.T) {
		if _, err := a.Call(ctx, "3001", CallOptions{}); !errors.Is(err, ErrRejected) {
			t.Fatalf("call to unregistered alias: %v, want an ARJ", err)
		}
	})
	t.Run("callee does not answer", func(t *testing.T) {
		c := NewEndpoint(t, EndpointConfig{Alias: "4001", Answer: AnswerConfig{NoConnect: true}})
		ringing, cancel := context.WithCancel(ctx)
		defer cancel()
		got := make(chan *Call, 1)
		go func() {
			// the caller gives up once the callee rings
			in, _ := c.Incoming(ctx)
			got <- in
			cancel()
		}()
		if _, err := a.Call(ringing, "4001", CallOptions{Direct: c.CallSignalAddr()}); !errors.Is(err, ErrTimeout) {
			t.Fatalf("call: %v, want a timeout", err)
		}
		in := <-got
		if in == nil {
			t.Fatal("callee saw no call")
		}
		if isClosed(in.connected) {
			t.Error("callee connected")
		}
		if Count(in.Messages(), "Setup") != 1 {
			t.Errorf("callee got %d Setup", Count(in.Messages(), "Setup"))
		}
	})
	t.Run("gatekeeper rejects ARQ", func(t *testing.T) {
		gk2 := NewGatekeeper(t, GatekeeperConfig{RejectARQ: func(*h225.AdmissionRequest) int { return h225.AdmissionRejectReason_RequestDenied }})
		d := NewEndpoint(t, EndpointConfig{Alias: "5001", Gatekeeper: gk2.RASAddr()})
		if err := d.Register(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Call(ctx, "5001", CallOptions{}); !errors.Is(err, ErrRejected) {
			t.Fatalf("call: %v, want an ARJ", err)
		}
	})
	t.Run("callee rejects", func(t *testing.T) {
		c, err := a.Call(ctx, "2001", CallOptions{FastStart: true})
		if !errors.Is(err, ErrRejected) {
			t.Fatalf("call: %v, want a rejection", err)
		}
		rc := Find(c.Messages(), "ReleaseComplete")
		if len(rc) != 1 || rc[0].UUIE.H323UuPdu.H323MessageBody.ReleaseComplete.Reason.Choice != h225.ReleaseCompleteReason_DestinationRejection {
			t.Errorf("ReleaseComplete %+v", rc)
		}
	})
}

// TestRASRequests covers LRQ, BRQ, IRQ/IRR and keep-alives.
func TestRASRequests(t *testing.T) {
	ctx := testCtx(t)
	private := netip.MustParseAddrPort("10.1.2.3:1720")
	gk := NewGatekeeper(t, GatekeeperConfig{})
	ep := NewEndpoint(t, EndpointConfig{Alias: "alice", Gatekeeper: gk.RASAddr(), KeepAlive: 10 * time.Millisecond,
		AdvertiseCallSignal: private})
	if err := ep.Register(ctx); err != nil {
		t.Fatal(err)
	}
	reg, _ := gk.Registered("alice")
	if reg.CallSignal != private || reg.Source != ep.RASAddr() {
		t.Errorf("registered call signal %s from %s, want %s from %s", reg.CallSignal, reg.Source, private, ep.RASAddr())
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sock := &rasSocket{conn: c, pending: map[int]chan *h225.RasMessage{}}
	go func() {
		buf := make([]byte, 2048)
		for {
			m, err := sock.read(buf)
			if err != nil {
				return
			}
			if m.RAS != nil {
				sock.deliver(m.RAS)
			}
		}
	}()
	done := make(chan struct{})
	defer close(done)
	for _, tc := range []struct {
		name string
		req  *h225.RasMessage
		want int
	}{
		{"LRQ known", ras.LRQ(1, []h225.AliasAddress{ras.H323ID("alice")}, sock.addr()), h225.RasMessage_LocationConfirm},
		{"LRQ unknown", ras.LRQ(2, []h225.AliasAddress{ras.H323ID("bob")}, sock.addr()), h225.RasMessage_LocationReject},
		{"BRQ", ras.BRQ(3, ras.Call{EndpointID: reg.EndpointID, ConferenceID: make([]byte, 16), ID: make([]byte, 16)}, 640), h225.RasMessage_BandwidthConfirm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := sock.request(ctx, done, tc.req, gk.RASAddr())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choice != tc.want {
				t.Errorf("answered %s", ras.Name(resp))
			}
			if resp.LocationConfirm != nil {
				if ap, _ := ras.AddrPort(&resp.LocationConfirm.CallSignalAddress); ap != private {
					t.Errorf("LCF call signal %s, want %s", ap, private)
				}
			}
		})
	}
	irr, err := gk.InfoRequest(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(irr.CallSignalAddress) != 1 || firstAddr(irr.CallSignalAddress) != private {
		t.Errorf("IRR call signal %v", irr.CallSignalAddress)
	}
	// the gatekeeper logs an RRQ before it handles it: wait for the count
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for reg.KeepAlives < 3 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("gatekeeper counted %d keep-alives", reg.KeepAlives)
		}
		reg, _ = gk.Registered("alice")
	}
	for _, m := range Find(gk.Received(), "RRQ")[1:] {
		r := m.RAS.RegistrationRequest
		if !r.KeepAlive || r.HasTerminalAlias || asString(r.EndpointIdentifier) != reg.EndpointID {
			t.Errorf("keep-alive RRQ: keepAlive %v aliases %v endpointID %q", r.KeepAlive, r.HasTerminalAlias, asString(r.EndpointIdentifier))
		}
	}
}

// TestGatekeeperRequests covers the gatekeeper's own requests: DRQ ends a
// call at both ends, a lost registration makes the endpoint register
// again, URQ unregisters.
func TestGatekeeperRequests(t *testing.T) {
	ctx := testCtx(t)
	gk := NewGatekeeper(t, GatekeeperConfig{})
	a := NewEndpoint(t, EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr(), KeepAlive: 5 * time.Millisecond})
	b := NewEndpoint(t, EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr()})
	for _, ep := range []*Endpoint{a, b} {
		if err := ep.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	call, err := a.Call(ctx, "2001", CallOptions{FastStart: true})
	if err != nil {
		t.Fatal(err)
	}
	in, err := b.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := gk.Disengage(ctx, "1001", call.ID); err != nil {
		t.Fatal(err)
	}
	<-call.Done()
	<-in.Done()
	// the DRQ'd caller sends no DRQ; the callee, released by the caller, does
	if err := gk.WaitFor(ctx, "DRQ", 1); err != nil {
		t.Fatal(err)
	}
	for _, m := range Find(gk.Received(), "DRQ") {
		if asString(m.RAS.DisengageRequest.EndpointIdentifier) == a.EndpointID() {
			t.Error("caller sent a DRQ after the gatekeeper's")
		}
	}

	gk.Forget()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for a.Reregistrations() == 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("endpoint did not register again")
		}
	}
	if _, ok := gk.Registered("1001"); !ok {
		t.Fatal("1001 not registered again")
	}

	if err := b.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gk.Unregister(ctx, "2001"); err != nil {
		t.Fatal(err)
	}
	if _, ok := gk.Registered("2001"); ok {
		t.Error("2001 still registered")
	}
	if Count(b.RAS(), "URQ") != 1 {
		t.Errorf("endpoint got %d URQ", Count(b.RAS(), "URQ"))
	}
}

// TestSharedCallSignalAddress registers two endpoints with one
// call-signalling address, as a proxy registers the endpoints behind it:
// both registrations must stand, and a third endpoint cannot take an
// alias of theirs from elsewhere.
func TestSharedCallSignalAddress(t *testing.T) {
	ctx := testCtx(t)
	gk := NewGatekeeper(t, GatekeeperConfig{})
	shared := netip.MustParseAddrPort("127.0.0.1:1720")
	a := NewEndpoint(t, EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr(), AdvertiseCallSignal: shared})
	b := NewEndpoint(t, EndpointConfig{Alias: "1002", Gatekeeper: gk.RASAddr(), AdvertiseCallSignal: shared})
	for _, ep := range []*Endpoint{a, b} {
		if err := ep.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ra, okA := gk.Registered("1001")
	rb, okB := gk.Registered("1002")
	if !okA || !okB || ra.EndpointID == rb.EndpointID {
		t.Fatalf("registrations %+v %+v", ra, rb)
	}
	c := NewEndpoint(t, EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr()})
	if err := c.Register(ctx); !errors.Is(err, ErrRejected) {
		t.Errorf("duplicate alias from another address: %v", err)
	}
}
