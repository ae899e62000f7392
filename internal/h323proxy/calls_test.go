package h323proxy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323proxy/callsig"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/policy"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/testpeer"
)

// Addresses of the end-to-end test: Portico's outside is outsideIP, its
// inside porticoIn; the gatekeeper is gatekeeperIP.
var (
	insideEPIP  = netip.MustParseAddr("127.0.0.4") // endpoints registered to the gatekeeper directly
	outsideEPIP = netip.MustParseAddr("127.0.0.5") // the endpoint behind NAT
	guestIP     = netip.MustParseAddr("127.0.0.6") // an unregistered caller
)

// callHistory collects the call records of Deps.Calls.
type callHistory struct {
	mu   sync.Mutex
	recs []store.CallRecord
	ch   chan struct{}
}

func (h *callHistory) add(r store.CallRecord) {
	h.mu.Lock()
	h.recs = append(h.recs, r)
	if h.ch != nil {
		close(h.ch)
		h.ch = nil
	}
	h.mu.Unlock()
}

// wait returns the records once there are n.
func (h *callHistory) wait(t *testing.T, ctx context.Context, n int) []store.CallRecord {
	t.Helper()
	for {
		h.mu.Lock()
		if len(h.recs) >= n {
			out := append([]store.CallRecord(nil), h.recs...)
			h.mu.Unlock()
			return out
		}
		if h.ch == nil {
			h.ch = make(chan struct{})
		}
		ch := h.ch
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%d call records, want %d", len(h.recs), n)
		}
	}
}

// porticoE2E is the H.323 service as the app builds it: RAS proxy,
// traversal server and call-signalling proxy with a media relay.
type porticoE2E struct {
	s                   *Server
	relay               *media.Relay
	reg                 *prometheus.Registry
	calls               *callHistory
	extRAS, extSig      netip.AddrPort
	inSignal, inRASAddr netip.AddrPort
	mux                 netip.AddrPort // the relay's multiplexed RTP port outside
}

func startE2E(t *testing.T, gk *h323test.Gatekeeper, guest policy.Guest) *porticoE2E {
	t.Helper()
	return startE2EWith(t, gk, guest, nil)
}

// startE2EWith is startE2E with mod applied to the Config.
func startE2EWith(t *testing.T, gk *h323test.Gatekeeper, guest policy.Guest, mod func(*Config)) *porticoE2E {
	t.Helper()
	lo := testpeer.FreePorts(t, 204)
	mux := lo + 200 + lo%2 // the even H.460.19 multiplexed port after both ranges
	relay, err := media.New(media.Config{Interfaces: map[string]media.InterfaceConfig{
		External: {Addr: outsideIP, PortMin: lo, PortMax: lo + 99, MultiplexPort: mux},
		Internal: {Addr: porticoIn, PortMin: lo + 100, PortMax: lo + 199},
	}, Latching: media.LatchNAT}, media.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Compile("policy.rules", policy.WithGuests(nil, guest))
	if err != nil {
		t.Fatal(err)
	}
	p := &porticoE2E{relay: relay, calls: &callHistory{}, reg: prometheus.NewRegistry(), mux: netip.AddrPortFrom(outsideIP, uint16(mux))}
	ports := testpeer.FreePorts(t, 4)
	p.extRAS = netip.AddrPortFrom(outsideIP, uint16(ports))
	p.extSig = netip.AddrPortFrom(outsideIP, uint16(ports+1))
	p.inSignal = netip.AddrPortFrom(porticoIn, uint16(ports+2))
	p.inRASAddr = netip.AddrPortFrom(porticoIn, uint16(ports+3))
	cfg := Config{ExternalRAS: p.extRAS, ExternalSignalPort: p.extSig.Port(), InternalRAS: p.inRASAddr,
		InternalSignal: p.inSignal, Gatekeeper: gk.RASAddr(), GatekeeperSignal: gk.CallSignalAddr(), Traversal: true,
		KeepAliveInterval: time.Second, TimeToLive: 30 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	p.s, err = New(cfg,
		Deps{Logger: slog.New(slog.DiscardHandler), Registerer: p.reg, Media: relay, Calls: p.calls.add, Policy: pol.Evaluate})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	relayDone, ran := make(chan struct{}), make(chan error, 1)
	go func() { relay.Run(ctx); close(relayDone) }()
	go func() { ran <- p.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		p.s.Close()
		<-relayDone
		relay.Close()
	})
	for !p.s.Ready() {
		select {
		case err := <-ran:
			t.Fatalf("Run: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return p
}

// mediaBothWays sends n RTP packets each way on every channel of a and b
// and waits until each side received them: they crossed the relay.
func mediaBothWays(t *testing.T, ctx context.Context, a, b *h323test.Call, relayOut, relayIn netip.Addr) {
	t.Helper()
	const n = 20
	for _, c := range []*h323test.Call{a, b} {
		if err := c.WaitMedia(ctx); err != nil {
			t.Fatalf("media addresses: %v", err)
		}
	}
	for _, c := range []*h323test.Call{a, b} {
		if err := c.SendRTP(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*h323test.Call{a, b} {
		if err := c.WaitReceived(ctx, n); err != nil {
			t.Fatalf("RTP: %v (%+v)\nA %+v\nB %+v", err, c.Media(), a.Media(), b.Media())
		}
	}
	// Each side sends to, and hears from, the relay on its own side.
	for _, side := range []struct {
		c     *h323test.Call
		relay netip.Addr
	}{{a, relayOut}, {b, relayIn}} {
		for _, st := range side.c.Media() {
			if st.Remote.Addr() != side.relay || st.From.Addr() != side.relay {
				t.Errorf("%v: sends to %v, hears from %v; want the relay at %v", st.Kind, st.Remote, st.From, side.relay)
			}
		}
	}
}

// connect places a call from caller to dest and returns it with its
// outside and inside halves (outside: the caller is the outside party).
func connect(t *testing.T, ctx context.Context, caller, callee *h323test.Endpoint, dest string, opts h323test.CallOptions, outside bool) (c, out, in *h323test.Call) {
	t.Helper()
	c, err := caller.Call(ctx, dest, opts)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	in, err = callee.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out = c
	if !outside {
		out, in = in, c
	}
	return c, out, in
}

// hangUp ends c (placed by connect), waits until the other half saw the
// end and returns what the outside party received.
func hangUp(c, out, in *h323test.Call) []h323test.Message {
	c.Hangup()
	other := in
	if c == in {
		other = out
	}
	<-other.Done()
	return out.Messages()
}

func causeOf(m *q931.Message) int {
	for _, ie := range m.IEs {
		if ie.ID == q931.IECause && len(ie.Data) >= 2 {
			return int(ie.Data[1] & 0x7f)
		}
	}
	return -1
}

// TestCallsEndToEnd runs the H.323 edge as deployed, between the shared
// simulators (package h323test), which stand in for real products: the
// gatekeeper for GnuGk or a VCS (gatekeeper-routed), the endpoints for
// room systems and soft clients. An endpoint behind NAT registers with
// H.460.18 through Portico and calls an endpoint registered to the
// gatekeeper directly; that endpoint calls it back (SCI, SCR, Facility,
// Setup through Portico); RTP crosses the relay both ways each time. A
// guest calls an allowed VMR alias and a disallowed one (ReleaseComplete,
// cause 21). History records all four with their dispositions, and tshark
// dissects everything Portico sent outside: nothing malformed and no inside
// address.
func TestCallsEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gk := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: gatekeeperIP, TimeToLive: 60, Routed: true})
	defer gk.Close()
	p := startE2E(t, gk, policy.Guest{Enabled: true, VMRRanges: []string{"1000-1099"}})

	inside := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(), IP: insideEPIP})
	defer inside.Close()
	vmr := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr(), IP: insideEPIP})
	defer vmr.Close()
	room := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "room-7", Gatekeeper: p.extRAS, IP: outsideEPIP,
		H46018: true, AdvertiseCallSignal: epDeclaredSig})
	defer room.Close()
	for _, ep := range []*h323test.Endpoint{inside, vmr, room} {
		if err := ep.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !room.H46018() {
		t.Fatal("H.460.18 not confirmed to the endpoint behind NAT")
	}

	var outsideMsgs []h323test.Message // what the outside parties received
	ended := 0                         // calls ended so far: records are awaited in order
	// talk places a call from caller to dest, has RTP cross the relay both
	// ways, hangs up and returns what the outside party received.
	talk := func(t *testing.T, caller, callee *h323test.Endpoint, dest string, opts h323test.CallOptions, outside bool) {
		c, out, in := connect(t, ctx, caller, callee, dest, opts, outside)
		mediaBothWays(t, ctx, out, in, outsideIP, porticoIn)
		outsideMsgs = append(outsideMsgs, hangUp(c, out, in)...)
		// Portico records the call once both legs are closed, which may
		// be after the parties saw the end: wait, so the next call's
		// record cannot come first.
		ended++
		p.calls.wait(t, ctx, ended)
	}
	t.Run("outside calls inside", func(t *testing.T) {
		talk(t, room, inside, "2001", h323test.CallOptions{FastStart: true}, true)
	})
	t.Run("inside calls outside through traversal", func(t *testing.T) {
		talk(t, inside, room, "room-7", h323test.CallOptions{H245: h323test.Tunnelled}, false)
		var sci bool
		for _, m := range room.RAS() {
			sci = sci || m.Name == "SCI"
		}
		if !sci {
			t.Error("the endpoint behind NAT got no SCI")
		}
	})
	guest := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "guest-1", IP: guestIP})
	defer guest.Close()
	t.Run("guest to a VMR", func(t *testing.T) {
		talk(t, guest, vmr, "1001", h323test.CallOptions{FastStart: true, Direct: p.extSig}, true)
	})
	t.Run("guest to a disallowed alias", func(t *testing.T) {
		c, err := guest.Call(ctx, "2001", h323test.CallOptions{FastStart: true, Direct: p.extSig})
		if !errors.Is(err, h323test.ErrRejected) {
			t.Fatalf("call = %v, want rejected", err)
		}
		var rc *h323test.Message
		for _, m := range c.Messages() {
			if m.Name == "ReleaseComplete" {
				rc = &m
			}
		}
		if rc == nil || causeOf(rc.Q931) != 21 {
			t.Fatalf("no ReleaseComplete with cause 21 (call rejected): %+v", rc)
		}
		outsideMsgs = append(outsideMsgs, c.Messages()...)
	})

	recs := p.calls.wait(t, ctx, 4)
	want := []struct{ typ, disp string }{
		{"registered", "normal"}, {"inbound", "normal"}, {"guest", "normal"},
		{"guest", "policy: destination not allowed (rule guest-deny)"},
	}
	for i, w := range want {
		r := recs[i]
		if r.Protocol != "h323" || r.CallType != w.typ || r.Disposition != w.disp {
			t.Errorf("record %d = protocol %q, type %q, disposition %q; want h323, %q, %q", i, r.Protocol, r.CallType, r.Disposition, w.typ, w.disp)
		}
	}
	// A refused call's record is written before its slot is given back:
	// the count may lag the record by a moment (the loop is bounded).
	for i := 0; i < 100 && p.s.Calls() != 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := p.s.Calls(); n != 0 {
		t.Errorf("%d calls still in progress", n)
	}
	for name, want := range map[string]float64{"portico_h323_calls": 0, "portico_h323_calls_ended_total": 3,
		"portico_h323_calls_refused_total": 1, "portico_h323_signalling_malformed_total": 0} {
		mfs, err := p.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := -1.0
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				got = m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	outsideMsgs = append(outsideMsgs, room.RAS()...)
	checkOutside(t, outsideMsgs)
}

// checkOutside asserts no inside address is in anything Portico sent
// outside, and has tshark dissect it all: RAS on 1719, call signalling
// on 1720 and separate H.245 on 11000 (ports fixed in the capture so the
// dissectors are chosen).
func checkOutside(t *testing.T, msgs []h323test.Message) {
	t.Helper()
	checkOutsideFor(t, msgs, []string{"registrationConfirm", "serviceControlIndication", "setup", "connect", "releaseComplete", "fastStart", "openLogicalChannelAck"})
}

// checkOutsideFor is checkOutside with the elements the dissection must
// show.
func checkOutsideFor(t *testing.T, msgs []h323test.Message, wants []string) {
	t.Helper()
	inside := []netip.Addr{porticoIn, gatekeeperIP, insideEPIP}
	for _, m := range msgs {
		if m.From.Addr() != outsideIP {
			t.Errorf("%s came from %v, not Portico's outside address", m.Name, m.From)
		}
		for _, a := range inside {
			if b := a.As4(); bytes.Contains(m.Raw, b[:]) {
				t.Errorf("%s sent outside carries the inside address %v", m.Name, a)
			}
		}
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		testpeer.Require(t, "tshark")
		return
	}
	path := filepath.Join(t.TempDir(), "outside.pcap")
	w, err := capture.NewPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sig := map[netip.AddrPort]bool{} // call-signalling connections: their H.245 is tunnelled
	for _, m := range msgs {
		if m.Q931 != nil {
			sig[m.From] = true
		}
	}
	for _, m := range msgs {
		var err error
		switch {
		case m.RAS != nil:
			err = w.UDP(netip.AddrPortFrom(outsideIP, 1719), m.To, m.Raw)
		case m.Q931 != nil:
			err = w.TCP(netip.AddrPortFrom(outsideIP, 1720), m.To, h245proxy.AppendFrame(nil, m.Raw))
		case m.H245 != nil:
			if sig[m.From] {
				continue // tunnelled: already inside its Q.931 message
			}
			err = w.TCP(netip.AddrPortFrom(outsideIP, 11000), m.To, h245proxy.AppendFrame(nil, m.Raw))
		default:
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	w.Close()
	out, err := exec.Command("tshark", "-r", path, "-d", "tcp.port==11000,h245", "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(text, "Malformed") || strings.Contains(text, "[Expert Info (Error") {
		t.Fatalf("tshark reports errors:\n%s", text)
	}
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("dissection of the %d packets Portico sent outside lacks %q", n, want)
		}
	}
	for _, a := range []string{porticoIn.String(), gatekeeperIP.String(), insideEPIP.String()} {
		if strings.Contains(text, a) {
			t.Errorf("tshark finds the inside address %s outside", a)
		}
	}
}

// TestDecide: the caller kind the call policy sees, and which dialled
// alias admits the call. A caller is registered only when it calls from
// the address its registration came from: an alias alone is a claim
// anyone can make.
func TestDecide(t *testing.T) {
	h := newHarness(t, nil)
	h.register("room-1", false)
	pol, err := policy.Compile("policy.rules", policy.WithGuests(nil, policy.Guest{Enabled: true, VMRRanges: []string{"1000-1099"}}))
	if err != nil {
		t.Fatal(err)
	}
	withDefault, err := policy.Compile("policy.rules", policy.WithGuests(nil, policy.Guest{Enabled: true, VMRRanges: []string{"1000-1099"}, DefaultDestination: "1000"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		pol    *policy.Policy
		info   callsig.CallInfo
		allow  bool
		kind   string
		reason string
		to     string
	}{
		{"registered caller to any destination", pol, callsig.CallInfo{From: []string{"room-1"}, To: []string{"2001"}, Source: outsideIP}, true, "registered", "", "2001"},
		{"registered alias from elsewhere is a guest", pol, callsig.CallInfo{From: []string{"room-1"}, To: []string{"2001"}, Source: guestIP}, false, "guest",
			"destination not allowed (rule guest-deny)", ""},
		{"guest to a VMR", pol, callsig.CallInfo{From: []string{"guest"}, To: []string{"1001"}, Source: guestIP}, true, "guest", "", "1001"},
		{"guest, second alias is a VMR", pol, callsig.CallInfo{To: []string{"sales", "1001"}, Source: guestIP}, true, "guest", "", "1001"},
		{"guest without destination", pol, callsig.CallInfo{Source: guestIP}, false, "guest", "destination not allowed (rule guest-deny)", ""},
		// The default destination is where a guest's call to anything else
		// goes: the alias dialled must not cross.
		{"guest to another alias goes to the default", withDefault, callsig.CallInfo{To: []string{"2001"}, Source: guestIP}, true, "guest", "", "1000"},
		{"guest without destination goes to the default", withDefault, callsig.CallInfo{Source: guestIP}, true, "guest", "", "1000"},
		{"guest to a VMR keeps it", withDefault, callsig.CallInfo{To: []string{"1001"}, Source: guestIP}, true, "guest", "", "1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.s.deps.Policy = tc.pol.Evaluate
			d := h.s.decide(tc.info)
			if d.Allow != tc.allow || d.CallType != tc.kind || d.Reason != tc.reason || d.To != tc.to {
				t.Errorf("decide = %+v, want allow %v, type %q, reason %q, to %q", d, tc.allow, tc.kind, tc.reason, tc.to)
			}
		})
	}
}

// TestRouteOnlyForTheAdmittedAlias: the address an inside ACF gave is
// used only for a Setup to the alias that was admitted; a registered
// endpoint that asked admission for one alias and sends its Setup for
// another is routed by the gatekeeper instead of reaching the first
// alias's endpoint directly. A Setup without callIdentifier goes to the
// gatekeeper (before, route dereferenced it).
func TestRouteOnlyForTheAdmittedAlias(t *testing.T) {
	h := newHarness(t, nil)
	gkSig := netip.MustParseAddrPort("127.0.0.3:1720")
	h.s.cfg.GatekeeperSignal = gkSig
	acf := netip.MustParseAddrPort("127.0.0.9:1720")
	id := [16]byte{1, 2, 3}
	noAlias := [16]byte{4, 5, 6}
	h.s.mu.Lock()
	h.s.dests[id] = admitted{addr: acf, aliases: []string{"2001"}}
	h.s.dests[noAlias] = admitted{addr: acf}
	h.s.mu.Unlock()
	setup := func(id [16]byte) *h225.SetupUUIE {
		return &h225.SetupUUIE{CallIdentifier: &h225.CallIdentifier{Guid: h225.GloballyUniqueID(id[:])}}
	}
	for _, tc := range []struct {
		name  string
		setup *h225.SetupUUIE
		to    []string
		want  netip.AddrPort
	}{
		{"admitted alias", setup(id), []string{"2001"}, acf},
		{"another alias", setup(id), []string{"3001"}, gkSig},
		{"no alias dialled, none admitted", setup(noAlias), nil, acf},
		{"alias dialled, none admitted", setup(noAlias), []string{"3001"}, gkSig},
		{"unknown call", setup([16]byte{9}), []string{"2001"}, gkSig},
		{"no callIdentifier", &h225.SetupUUIE{}, []string{"2001"}, gkSig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.s.route(context.Background(), tc.setup, callsig.CallInfo{To: tc.to})
			if err != nil || got != tc.want {
				t.Errorf("route = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
