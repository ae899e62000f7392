package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestH323ThroughDaemon: portico serve runs the H.323 edge from its
// section. An outside endpoint registers through it with a scripted
// inside gatekeeper (standing in for GnuGk or a DMA); the refusal reaches
// the endpoint and registration history in words, the confirmed
// registration shows in the live list, both through the API.
func TestH323ThroughDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon test; skipped under -short")
	}
	dir := t.TempDir()
	mgmt := freeAddr(t)
	gk, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer gk.Close()
	rasPort := testpeer.FreePort(t)
	cfg := baseConfig(mgmt) + fmt.Sprintf("h323:\n  enabled: true\n  ras_port: %d\n  signal_port: %d\n  gatekeeper: %s\n",
		rasPort, testpeer.FreePort(t), gk.LocalAddr())
	d := startDaemon(t, dir, cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	raw, _ := os.ReadFile("../internal/api/openapi.json")
	oc := newOpenAPIChecker(t, raw)
	c := newClient(t, d.url)
	c.record = func(method, path string, code int, body []byte) { oc.check(t, method, path, code, body) }
	c.csrf = true
	c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})

	ep, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	portico := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(rasPort))
	buf := make([]byte, 4096)
	read := func(c *net.UDPConn, want int) (netip.AddrPort, *h225.RasMessage) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no message: %v", err)
		}
		m, err := ras.Parse(buf[:n])
		if err != nil || m.Choice != want {
			t.Fatalf("got %v (%v), want %s", m, err, ras.Name(&h225.RasMessage{Choice: want}))
		}
		return from, m
	}
	send := func(c *net.UDPConn, to netip.AddrPort, m *h225.RasMessage) {
		t.Helper()
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c.WriteToUDPAddrPort(b, to)
	}
	e := ras.Endpoint{RAS: netip.MustParseAddrPort("192.0.2.10:1719"), CallSignal: netip.MustParseAddrPort("192.0.2.10:1720"),
		Aliases: []h225.AliasAddress{ras.H323ID("room-1")}, Terminal: true}
	send(ep, portico, ras.RRQ(1, e))
	from, m := read(gk, h225.RasMessage_RegistrationRequest)
	send(gk, from, ras.RRJ(m.RegistrationRequest, h225.RegistrationRejectReason_SecurityDenial))
	_, m = read(ep, h225.RasMessage_RegistrationReject)
	if m.RegistrationReject.RejectReason.Choice != h225.RegistrationRejectReason_SecurityDenial {
		t.Errorf("RRJ reason %d", m.RegistrationReject.RejectReason.Choice)
	}
	var found bool
	for i := 0; i < 50 && !found; i++ {
		var evs []struct{ Protocol, AOR, Kind, Reason string }
		c.must(200, "GET", "/api/v1/history/registrations", nil).json(t, &evs)
		for _, ev := range evs {
			found = found || ev.Protocol == "h323" && ev.Kind == "rejected" && ev.AOR == "room-1" && ev.Reason == "gatekeeper rejected: security denial"
		}
		if !found {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !found {
		t.Error("the rejection is not in registration history")
	}

	send(ep, portico, ras.RRQ(2, e))
	from, m = read(gk, h225.RasMessage_RegistrationRequest)
	send(gk, from, ras.RCF(m.RegistrationRequest, "", "EP-INSIDE", netip.MustParseAddrPort("127.0.0.1:1720"), 60))
	read(ep, h225.RasMessage_RegistrationConfirm)
	var regs []struct {
		Aliases []string
		Source  string
	}
	c.must(200, "GET", "/api/v1/h323/registrations", nil).json(t, &regs)
	if len(regs) != 1 || strings.Join(regs[0].Aliases, ",") != "room-1" || regs[0].Source != ep.LocalAddr().String() {
		t.Errorf("live registrations = %+v", regs)
	}
	var zones []map[string]any
	if c.must(200, "GET", "/api/v1/h323/zones", nil).json(t, &zones); len(zones) != 0 {
		t.Errorf("zones of an edge without any: %+v", zones)
	}
}

// TestH323CallsThroughDaemon: portico serve with the h323 and media
// sections runs the whole H.323 edge. The shared simulators (package
// h323test) stand in for real products: a gatekeeper for GnuGk or a VCS,
// endpoints for room systems. An endpoint behind NAT registers with
// H.460.18 through the daemon, calls an inside endpoint and is called
// back (SCI through the daemon), with RTP through the relay both ways; a
// guest reaches a VMR and is refused elsewhere; call history (API) shows
// all four with their dispositions.
func TestH323CallsThroughDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon test; skipped under -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startH323Rig(t, ctx)
	c, extSig, room, inside, vmr := r.c, r.extSig, r.room, r.inside, r.vmr
	talk := func(caller, callee *h323test.Endpoint, dest string, opts h323test.CallOptions) {
		t.Helper()
		a, b := r.connect(t, ctx, caller, callee, dest, opts)
		a.Hangup()
		<-b.Done()
	}
	talk(room, inside, "2001", h323test.CallOptions{FastStart: true})
	talk(inside, room, "room-7", h323test.CallOptions{H245: h323test.Tunnelled})
	guest := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "guest-1", IP: netip.MustParseAddr("127.0.0.7")})
	defer guest.Close()
	talk(guest, vmr, "1001", h323test.CallOptions{FastStart: true, Direct: extSig})
	if _, err := guest.Call(ctx, "2001", h323test.CallOptions{FastStart: true, Direct: extSig}); !errors.Is(err, h323test.ErrRejected) {
		t.Fatalf("guest call to 2001 = %v, want rejected", err)
	}

	var calls []struct {
		Protocol    string `json:"protocol"`
		CallType    string `json:"call_type"`
		Disposition string `json:"disposition"`
	}
	waitFor(t, 10*time.Second, func() bool {
		c.must(200, "GET", "/api/v1/history/calls", nil).json(t, &calls)
		return len(calls) >= 4
	})
	var got []string
	for _, r := range calls {
		got = append(got, r.Protocol+" "+r.CallType+" "+r.Disposition)
	}
	slices.Sort(got)
	want := []string{"h323 guest normal", "h323 guest policy: destination not allowed (rule guest-deny)", "h323 inbound normal", "h323 registered normal"}
	if !slices.Equal(got, want) {
		t.Errorf("call history:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
