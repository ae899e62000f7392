package h323test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// These tests run the endpoint simulator against the minimal gatekeeper:
// both stand in for real H.323 products, none of which is packaged here.

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// exchangeRTP has each call send n RTP packets on every channel once the
// peer signalled where, and waits until each received n.
func exchangeRTP(t *testing.T, ctx context.Context, n int, calls ...*Call) {
	t.Helper()
	for _, c := range calls {
		if err := c.WaitMedia(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.SendRTP(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range calls {
		if err := c.WaitReceived(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRegister(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h46018 bool
	}{{"plain", false}, {"h460.18", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			gk := NewGatekeeper(t, GatekeeperConfig{})
			ep := NewEndpoint(t, EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr(), H46018: tc.h46018, KeepAlive: 20 * time.Millisecond})
			if err := ep.Register(ctx); err != nil {
				t.Fatal(err)
			}
			reg, ok := gk.Registered("1001")
			if !ok {
				t.Fatal("1001 not registered")
			}
			if reg.CallSignal != ep.CallSignalAddr() || reg.H46018 != tc.h46018 || ep.H46018() != tc.h46018 {
				t.Errorf("registration %+v, endpoint at %s (H.460.18 %v)", reg, ep.CallSignalAddr(), ep.H46018())
			}
			if reg.EndpointID != ep.EndpointID() {
				t.Errorf("endpointID %q, RCF gave %q", reg.EndpointID, ep.EndpointID())
			}
			if err := gk.WaitFor(ctx, "RRQ", 3); err != nil {
				t.Fatal(err)
			}
			ep.Close()
			if _, ok := gk.Registered("1001"); ok {
				t.Error("still registered after Close (URQ)")
			}
		})
	}
}

func TestRegisterReject(t *testing.T) {
	gk := NewGatekeeper(t, GatekeeperConfig{RejectRRQ: func(*h225.RegistrationRequest) int {
		return h225.RegistrationRejectReason_SecurityDenial
	}})
	ep := NewEndpoint(t, EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr()})
	if err := ep.Register(testCtx(t)); err == nil {
		t.Fatal("registered despite RejectRRQ")
	}
}

func TestCalls(t *testing.T) {
	for _, tc := range []struct {
		name   string
		routed bool
		h46018 bool
		opts   CallOptions
		answer AnswerConfig
	}{
		{name: "direct faststart", opts: CallOptions{FastStart: true}},
		{name: "direct tunnelled", opts: CallOptions{H245: Tunnelled}},
		{name: "direct separate", opts: CallOptions{H245: Separate}},
		{name: "faststart refused", opts: CallOptions{FastStart: true, H245: Separate}, answer: AnswerConfig{NoFastStart: true}},
		{name: "routed faststart", routed: true, opts: CallOptions{FastStart: true}},
		{name: "routed separate", routed: true, opts: CallOptions{H245: Separate}},
		{name: "h460.18 faststart", h46018: true, opts: CallOptions{FastStart: true}},
		{name: "h460.18 tunnelled", h46018: true, opts: CallOptions{H245: Tunnelled}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			rec := NewRecorder(t)
			gk := NewGatekeeper(t, GatekeeperConfig{Routed: tc.routed, Recorder: rec})
			a := NewEndpoint(t, EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr(), H46018: tc.h46018, Recorder: rec})
			b := NewEndpoint(t, EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(), H46018: tc.h46018, Answer: tc.answer, Recorder: rec})
			for _, ep := range []*Endpoint{a, b} {
				if err := ep.Register(ctx); err != nil {
					t.Fatal(err)
				}
			}
			call, err := a.Call(ctx, "2001", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			in, err := b.Incoming(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if in.ID != call.ID {
				t.Errorf("callee sees call %x, caller placed %x", in.ID, call.ID)
			}
			exchangeRTP(t, ctx, 5, call, in)
			wantFS := tc.opts.FastStart && !tc.answer.NoFastStart
			if call.FastStart != wantFS || in.FastStart != wantFS {
				t.Errorf("fastStart caller %v callee %v, want %v", call.FastStart, in.FastStart, wantFS)
			}
			for _, st := range call.Media() {
				if st.Remote != in.Stats(st.Kind).Local {
					t.Errorf("%s: caller sends to %s, callee receives on %s", st.Kind, st.Remote, in.Stats(st.Kind).Local)
				}
			}
			if tc.h46018 {
				if Count(b.RAS(), "SCI") < 1 || Count(gk.Received(), "SCR") < 1 || bindings(gk.Received()) != 1 {
					t.Errorf("H.460.18: SCI %d, SCR %d, Facility binding %d", Count(b.RAS(), "SCI"), Count(gk.Received(), "SCR"), bindings(gk.Received()))
				}
			}
			if (tc.routed || tc.h46018) != (Count(gk.Received(), "Setup") == 1) {
				t.Errorf("gatekeeper saw %d Setup, routed %v", Count(gk.Received(), "Setup"), tc.routed || tc.h46018)
			}
			if err := call.Hangup(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-in.Done():
			case <-ctx.Done():
				t.Fatal("callee did not see the release")
			}
			if err := gk.WaitFor(ctx, "DRQ", 2); err != nil {
				t.Fatal(err)
			}
			frames := rec.Dissect(t)
			NoMalformed(t, frames)
			checkDissected(t, frames, call, in, tc.opts.FastStart && !tc.answer.NoFastStart)
		})
	}
}

// checkDissected checks that tshark decodes the call: RAS, Q.931 with
// H.225.0, and the media ports the two sides signalled (in fastStart
// elements or H.245) as H.245 tsapIdentifiers.
func checkDissected(t *testing.T, frames []Dissected, call, in *Call, fastStart bool) {
	t.Helper()
	if len(Values(frames, "h225.RasMessage")) == 0 {
		t.Error("tshark found no RAS")
	}
	var q931 int
	for _, f := range frames {
		if strings.Contains(f.Protocols, "q931") {
			q931++
		}
	}
	if q931 < 4 { // Setup, CallProceeding, Alerting, Connect, ReleaseComplete
		t.Errorf("tshark found %d Q.931 frames", q931)
	}
	ports := map[string]bool{}
	for _, p := range Values(frames, "h245.tsapIdentifier") {
		ports[p] = true
	}
	for _, c := range []*Call{call, in} {
		for _, st := range c.Media() {
			if !ports[strconv.Itoa(int(st.Local.Port()))] {
				t.Errorf("%s RTP port %d (caller %v) not among the dissected H.245 addresses", st.Kind, st.Local.Port(), c.Caller)
			}
		}
	}
	if fastStart && len(Values(frames, "h225.fastStart")) == 0 {
		t.Error("tshark found no fastStart")
	}
}

// TestDissectReportsMalformed checks the helper itself: a truncated RAS
// message must come back malformed, a whole one not.
func TestDissectReportsMalformed(t *testing.T) {
	rec := NewRecorder(t)
	rec.Port(4000, "h225")
	b, err := ras.GRQ(1, ras.Endpoint{RAS: netip.MustParseAddrPort("127.0.0.1:4001"), Aliases: []h225.AliasAddress{ras.E164("1001")}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	src, dst := netip.MustParseAddrPort("127.0.0.1:4001"), netip.MustParseAddrPort("127.0.0.1:4000")
	rec.UDP(src, dst, b)
	rec.UDP(src, dst, b[:len(b)/2])
	frames := rec.Dissect(t)
	if len(frames) != 2 {
		t.Fatalf("%d frames, want 2", len(frames))
	}
	if frames[0].Malformed || !frames[0].Has("h225.dialledDigits", "1001") {
		t.Errorf("whole GRQ: malformed %v, fields %v", frames[0].Malformed, frames[0].Fields["h225.dialledDigits"])
	}
	if !frames[1].Malformed {
		t.Error("truncated GRQ not reported malformed")
	}
}

// bindings counts the Facility messages with a facility body (the
// H.460.18 binding ones; tunnelled H.245 comes in empty-bodied ones).
func bindings(msgs []Message) int {
	n := 0
	for _, m := range Find(msgs, "Facility") {
		if m.UUIE != nil && m.UUIE.H323UuPdu.H323MessageBody.Facility != nil {
			n++
		}
	}
	return n
}

// TestDialsFromConfiguredIP: a call's connection comes from the
// endpoint's configured IP, as its RAS and media do (an edge that tells
// callers apart by source address depends on it).
func TestDialsFromConfiguredIP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ip := netip.MustParseAddr("127.0.0.9")
	ep := NewEndpoint(t, EndpointConfig{Alias: "caller", IP: ip})
	defer ep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go ep.Call(ctx, "callee", CallOptions{Direct: addrPort(ln.Addr())})
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := addrPort(c.RemoteAddr()).Addr(); got != ip {
		t.Errorf("call connection from %v, want %v", got, ip)
	}
}
