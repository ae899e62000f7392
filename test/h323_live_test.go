package test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/testpeer"
)

// h323Rig is portico serve with the h323 and media sections in front of
// the shared simulators (package h323test): a routed gatekeeper standing
// in for GnuGk or a VCS on 127.0.0.4, inside endpoints 2001 and VMR 1001
// on 127.0.0.5, and room-7 outside on 127.0.0.6 behind NAT with H.460.18,
// all registered. Portico's outside address is 127.0.0.2, its inside one
// 127.0.0.3.
type h323Rig struct {
	d                 *daemon
	c                 *apiClient
	gk                *h323test.Gatekeeper
	extRAS, extSig    netip.AddrPort
	inside, vmr, room *h323test.Endpoint
}

func startH323Rig(t *testing.T, ctx context.Context) *h323Rig {
	t.Helper()
	ext, in := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	gk := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: netip.MustParseAddr("127.0.0.4"), TimeToLive: 60, Routed: true})
	t.Cleanup(gk.Close)
	dir, mgmt := t.TempDir(), freeAddr(t)
	ports, media := testpeer.FreePorts(t, 2), testpeer.FreePorts(t, 40)
	cfg := strings.Replace(baseConfig(mgmt), "external: {address: 127.0.0.1}", "external: {address: "+ext.String()+"}", 1)
	cfg = strings.Replace(cfg, "internal: {address: 127.0.0.1, networks: [10.0.0.0/8]}", "internal: {address: "+in.String()+", networks: [10.0.0.0/8]}", 1)
	cfg += fmt.Sprintf(`media:
  enabled: true
  external: {port_min: %d, port_max: %d}
  internal: {port_min: %d, port_max: %d}
sip:
  guest: {enabled: true, vmr_ranges: ["1000-1099"]}
h323:
  enabled: true
  ras_port: %d
  signal_port: %d
  gatekeeper: %s
  gatekeeper_signal: %s
`, media, media+19, media+20, media+39, ports, ports+1, gk.RASAddr(), gk.CallSignalAddr())
	r := &h323Rig{gk: gk, extRAS: netip.AddrPortFrom(ext, uint16(ports)), extSig: netip.AddrPortFrom(ext, uint16(ports+1))}
	r.d = startDaemon(t, dir, cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	r.c = newClient(t, r.d.url)
	r.c.csrf = true
	r.c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})

	insideIP := netip.MustParseAddr("127.0.0.5")
	r.inside = h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(), IP: insideIP})
	r.vmr = h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr(), IP: insideIP})
	r.room = h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "room-7", Gatekeeper: r.extRAS, IP: netip.MustParseAddr("127.0.0.6"),
		H46018: true, AdvertiseCallSignal: netip.MustParseAddrPort("192.0.2.10:1720")})
	for _, ep := range []*h323test.Endpoint{r.inside, r.vmr, r.room} {
		t.Cleanup(ep.Close)
	}
	var err error
	for i := 0; i < 50; i++ { // the daemon binds H.323 after it answers the API
		if err = r.room.Register(ctx); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("outside registration: %v", err)
	}
	for _, ep := range []*h323test.Endpoint{r.inside, r.vmr} {
		if err := ep.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// connect places a call from caller to dest, answered by callee, and waits
// until RTP has crossed the relay both ways on every channel.
func (r *h323Rig) connect(t *testing.T, ctx context.Context, caller, callee *h323test.Endpoint, dest string, opts h323test.CallOptions) (a, b *h323test.Call) {
	t.Helper()
	a, err := caller.Call(ctx, dest, opts)
	if err != nil {
		t.Fatalf("call %s: %v", dest, err)
	}
	if b, err = callee.Incoming(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*h323test.Call{a, b} {
		if err := c.WaitMedia(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.SendRTP(10); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*h323test.Call{a, b} {
		if err := c.WaitReceived(ctx, 10); err != nil {
			t.Fatalf("call %s: RTP: %v", dest, err)
		}
	}
	return a, b
}

// checkOpenAPI checks every API response from now on against the OpenAPI
// document (/metrics is not part of it).
func (r *h323Rig) checkOpenAPI(t *testing.T) {
	raw, _ := os.ReadFile("../internal/api/openapi.json")
	oc := newOpenAPIChecker(t, raw)
	r.c.record = func(method, path string, code int, body []byte) {
		if path != "/metrics" {
			oc.check(t, method, path, code, body)
		}
	}
}

// relaySessions reads portico_media_open{object="sessions"} from /metrics.
func (r *h323Rig) relaySessions(t *testing.T) int {
	t.Helper()
	body := string(r.c.must(200, "GET", "/metrics", nil).body)
	m := regexp.MustCompile(`(?m)^portico_media_open\{object="sessions"\} (\d+)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no portico_media_open{object=\"sessions\"} in /metrics")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestH323LiveCallEndedByAdmin: a live H.323 call through portico serve
// shows in GET /api/v1/calls (protocol h323, both legs with the addresses
// each side sees, codecs, the relay's counters), and DELETE
// /api/v1/calls/{id} ends it: ReleaseComplete reaches both simulated
// endpoints, the relay session is released, and call history records
// "ended by administrator". Every response is checked against the
// OpenAPI document.
func TestH323LiveCallEndedByAdmin(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon test; skipped under -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startH323Rig(t, ctx)
	r.checkOpenAPI(t)

	a, b := r.connect(t, ctx, r.room, r.inside, "2001", h323test.CallOptions{FastStart: true})
	type leg struct{ Side, Party, Alias, Remote, Local string }
	type stream struct {
		Kind         string
		Codec        string
		PacketsIn    uint64 `json:"packets_in"`
		PacketsOut   uint64 `json:"packets_out"`
		RelayOutside string `json:"relay_outside"`
		RelayInside  string `json:"relay_inside"`
	}
	var calls []struct {
		Protocol, ID, Type, From, To, State, Codecs string
		Answered                                    time.Time
		Legs                                        []leg
		Streams                                     []stream
	}
	// The relay's counters are read at the request: wait until the RTP
	// both ways is counted.
	waitFor(t, 10*time.Second, func() bool {
		r.c.must(200, "GET", "/api/v1/calls", nil).json(t, &calls)
		return len(calls) == 1 && len(calls[0].Streams) > 0 && calls[0].Streams[0].PacketsIn >= 10 && calls[0].Streams[0].PacketsOut >= 10
	})
	c := calls[0]
	if c.Protocol != "h323" || c.Type != "registered" || c.From != "room-7" || c.To != "2001" || c.State != "confirmed" || c.Answered.IsZero() {
		t.Errorf("live call %+v", c)
	}
	if c.ID != fmt.Sprintf("%x", a.ID) {
		t.Errorf("id %s, want the callIdentifier %x", c.ID, a.ID)
	}
	roomSig := "127.0.0.6:"
	if len(c.Legs) != 2 ||
		c.Legs[0] != (leg{"outside", "caller", "room-7", c.Legs[0].Remote, c.Legs[0].Local}) || !strings.HasPrefix(c.Legs[0].Remote, roomSig) ||
		c.Legs[0].Local != r.extSig.String() ||
		c.Legs[1].Side != "inside" || c.Legs[1].Party != "callee" || c.Legs[1].Alias != "2001" ||
		!strings.HasPrefix(c.Legs[1].Remote, r.gk.CallSignalAddr().Addr().String()+":") || !strings.HasPrefix(c.Legs[1].Local, "127.0.0.3:") {
		t.Errorf("legs %+v", c.Legs)
	}
	s := c.Streams[0]
	if s.Kind != "audio" || s.Codec == "" || !strings.Contains(c.Codecs, s.Codec) ||
		!strings.HasPrefix(s.RelayOutside, "127.0.0.2:") || !strings.HasPrefix(s.RelayInside, "127.0.0.3:") {
		t.Errorf("stream %+v, codecs %q", s, c.Codecs)
	}
	if n := r.relaySessions(t); n != 1 {
		t.Errorf("%d relay sessions during the call, want 1", n)
	}

	r.c.must(204, "DELETE", "/api/v1/calls/"+c.ID, nil)
	for _, call := range []*h323test.Call{a, b} {
		select {
		case <-call.Done():
		case <-ctx.Done():
			t.Fatal("a simulated endpoint's call did not end")
		}
		var released bool
		for _, m := range call.Messages() {
			released = released || m.Name == "ReleaseComplete"
		}
		if !released {
			var names []string
			for _, m := range call.Messages() {
				names = append(names, m.Name)
			}
			t.Errorf("caller=%v: no ReleaseComplete received (err %v, messages %v)", call.Caller, call.Err(), names)
		}
	}
	var hist []struct {
		ID, Protocol, Disposition string
		EndedBy                   string `json:"ended_by"`
	}
	waitFor(t, 10*time.Second, func() bool {
		r.c.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
		return len(hist) == 1
	})
	if h := hist[0]; h.ID != c.ID || h.Protocol != "h323" || h.Disposition != "ended by administrator" || h.EndedBy != "admin" {
		t.Errorf("history %+v", h)
	}
	r.c.must(200, "GET", "/api/v1/calls", nil).json(t, &calls)
	if len(calls) != 0 {
		t.Errorf("calls listed after the hang-up: %+v", calls)
	}
	if n := r.relaySessions(t); n != 0 {
		t.Errorf("%d relay sessions after the hang-up", n)
	}
	r.c.must(404, "DELETE", "/api/v1/calls/"+c.ID, nil)
}

// TestH323RegistrationEndedByAdmin: DELETE
// /api/v1/h323/registrations?alias= through portico serve unregisters the
// outside endpoint on both sides (URQ to the gatekeeper, which drops it,
// and to the endpoint), the live list no longer shows it, registration
// history records why, and a second DELETE is 404.
func TestH323RegistrationEndedByAdmin(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon test; skipped under -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startH323Rig(t, ctx)
	r.checkOpenAPI(t)

	var res struct{ Unregistered int }
	r.c.must(200, "DELETE", "/api/v1/h323/registrations?alias=room-7", nil).json(t, &res)
	if res.Unregistered != 1 {
		t.Errorf("unregistered %d, want 1", res.Unregistered)
	}
	if err := r.gk.WaitFor(ctx, "URQ", 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return h323test.Count(r.room.RAS(), "URQ") == 1 })
	waitFor(t, 10*time.Second, func() bool { _, ok := r.gk.Registered("room-7"); return !ok })
	var regs []struct{ Aliases []string }
	r.c.must(200, "GET", "/api/v1/h323/registrations", nil).json(t, &regs)
	if len(regs) != 0 {
		t.Errorf("live registrations after the DELETE: %+v", regs)
	}
	waitFor(t, 10*time.Second, func() bool {
		var evs []struct{ Protocol, AOR, Kind, Reason string }
		r.c.must(200, "GET", "/api/v1/history/registrations", nil).json(t, &evs)
		for _, ev := range evs {
			if ev.Protocol == "h323" && ev.AOR == "room-7" && ev.Kind == "unregistered" && ev.Reason == "unregistered by an administrator" {
				return true
			}
		}
		return false
	})
	r.c.must(404, "DELETE", "/api/v1/h323/registrations?alias=room-7", nil)
}
