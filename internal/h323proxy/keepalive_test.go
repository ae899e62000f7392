package h323proxy

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/policy"
	"github.com/portico-edge/portico/internal/testpeer"
)

// kaEPIP is the H.460.18 endpoint of the keep-alive tests; the capture
// takes what is sent to it.
var kaEPIP = netip.MustParseAddr("127.0.0.151")

func TestKeepAliveFor(t *testing.T) {
	code := 0x5054
	for _, tc := range []struct {
		name      string
		rules     []KeepAliveRule
		product   string
		sig, h245 KeepAliveMethod
	}{
		{"unknown vendor: tpkt on both", nil, "FooPhone", KeepAliveTPKT, KeepAliveTPKT},
		{"cisco: empty facility", nil, "Cisco TelePresence SX20", KeepAliveFacility, KeepAliveTPKT},
		{"tandberg: empty facility", nil, "TANDBERG MXP", KeepAliveFacility, KeepAliveTPKT},
		{"polycom: no h245 keep-alive", nil, "Polycom HDX 8000", KeepAliveTPKT, KeepAliveNone},
		{"configured rule first", []KeepAliveRule{{Product: "hdx", Signalling: KeepAliveNone}}, "Polycom HDX 8000", KeepAliveNone, KeepAliveTPKT},
		{"manufacturer code", []KeepAliveRule{{Manufacturer: &code, H245: KeepAliveNone}}, "anything", KeepAliveTPKT, KeepAliveNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{cfg: Config{KeepAlives: tc.rules}}
			v := &h225.VendorIdentifier{Vendor: h225.H221NonStandard{T35CountryCode: 181, ManufacturerCode: int64(code)},
				ProductId: []byte(tc.product), HasProductId: true}
			sig, h245 := s.keepAliveFor(v)
			if sig != tc.sig || h245 != tc.h245 {
				t.Errorf("keepAliveFor(%q) = %s, %s; want %s, %s", tc.product, sig, h245, tc.sig, tc.h245)
			}
		})
	}
}

// TestKeepAlivesOnTheWire: during a call of an H.460.18 endpoint (the
// simulator, standing in for a room system behind NAT) that uses a
// separate H.245 connection, Portico sends the keep-alive methods its
// vendor's rule names on the call-signalling and H.245 connections, at the
// keep-alive interval (1s here). A live capture of what reached the
// endpoint, dissected by tshark, shows them: empty TPKT packets, empty
// Facility messages, or nothing.
func TestKeepAlivesOnTheWire(t *testing.T) {
	testpeer.Require(t, "tshark")
	for _, tc := range []struct {
		sig, h245 KeepAliveMethod
	}{
		{KeepAliveTPKT, KeepAliveTPKT},
		{KeepAliveFacility, KeepAliveNone},
		{KeepAliveNone, KeepAliveNone},
	} {
		t.Run(fmt.Sprintf("%s-%s", tc.sig, tc.h245), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			capt := testpeer.StartCapture(t, fmt.Sprintf("host %s or (udp and host %s)", kaEPIP, testpeer.ProbeIP), 1719)
			gk := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: gatekeeperIP, TimeToLive: 60, Routed: true})
			p := startE2EWith(t, gk, policy.Guest{}, func(c *Config) {
				// The simulator's endpointVendor names Portico.
				c.KeepAlives = []KeepAliveRule{{Product: "portico", Signalling: tc.sig, H245: tc.h245}}
			})
			inside := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(), IP: insideEPIP})
			defer inside.Close()
			room := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "room-9", Gatekeeper: p.extRAS, IP: kaEPIP, H46018: true})
			defer room.Close()
			for _, ep := range []*h323test.Endpoint{inside, room} {
				if err := ep.Register(ctx); err != nil {
					t.Fatal(err)
				}
			}
			c, err := room.Call(ctx, "2001", h323test.CallOptions{H245: h323test.Separate})
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			in, err := inside.Incoming(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.WaitMedia(ctx); err != nil {
				t.Fatal(err)
			}
			// Three keep-alive intervals with the call up.
			hold := 3*time.Second + 500*time.Millisecond
			select {
			case <-time.After(hold):
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
			c.Hangup()
			<-in.Done()
			capt.Stop(t)

			toEP := fmt.Sprintf("ip.src == %s && ip.dst == %s", outsideIP, kaEPIP)
			var emptySig, emptyH245, facilities int
			for _, f := range capture.Frames(t, capt.File, toEP+" && tcp.len > 0") {
				for b := f.Payload; len(b) >= 4; {
					n := int(b[2])<<8 | int(b[3])
					if b[0] != 3 || n < 4 || n > len(b) {
						break
					}
					switch {
					case n == 4 && f.SrcPort == int(p.extSig.Port()):
						emptySig++
					case n == 4:
						emptyH245++
					case isKeepAliveFacility(b[4:n]):
						facilities++
					}
					b = b[n:]
				}
			}
			text, err := exec.Command("tshark", "-r", capt.File, "-Y", toEP+" && tpkt", "-V").CombinedOutput()
			if err != nil {
				t.Fatalf("tshark: %v\n%s", err, text)
			}
			if strings.Contains(string(text), "Malformed") || strings.Contains(string(text), "[Expert Info (Error") {
				t.Fatalf("tshark reports errors:\n%s", text)
			}
			t.Logf("to the endpoint: %d empty TPKT on call signalling, %d on H.245, %d empty Facility", emptySig, emptyH245, facilities)
			want := func(what string, got int, on bool) {
				if on && got < 2 || !on && got != 0 {
					t.Errorf("%s: %d in three intervals (method on: %v)", what, got, on)
				}
			}
			want("empty TPKT on call signalling", emptySig, tc.sig == KeepAliveTPKT)
			want("empty Facility on call signalling", facilities, tc.sig == KeepAliveFacility)
			want("empty TPKT on H.245", emptyH245, tc.h245 == KeepAliveTPKT)
			if got, sent := counter(t, p, "portico_h323_signalling_keepalives_total"), emptySig+facilities; got < float64(sent) {
				t.Errorf("portico_h323_signalling_keepalives_total = %v, %d seen on the wire", got, sent)
			}
			if tc.sig == KeepAliveFacility && !strings.Contains(string(text), "undefinedReason") {
				t.Error("tshark shows no Facility with reason undefinedReason")
			}
		})
	}
}

// isKeepAliveFacility reports whether p is a Q.931 Facility whose
// Facility-UUIE has reason undefinedReason and nothing but a call
// identifier.
func isKeepAliveFacility(p []byte) bool {
	var m q931.Message
	if m.Parse(p) != nil || m.Type != q931.Facility {
		return false
	}
	uu, err := m.UserUser()
	var ui h225.H323UserInformation
	if err != nil || ui.Unmarshal(uu) != nil {
		return false
	}
	f := ui.H323UuPdu.H323MessageBody.Facility
	return f != nil && f.Reason.Choice == h225.FacilityReason_UndefinedReason && !f.HasFastStart && len(ui.H323UuPdu.H245Control) == 0
}

// counter returns the value of the unlabelled metric name of p.
func counter(t *testing.T, p *porticoE2E, name string) float64 {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestKeepAliveBySource: a call's outside connection takes the methods of
// the H.460.18 registration from its IP address (the newest of several
// behind one NAT), and a non-H.460.18 source gets none.
func TestKeepAliveBySource(t *testing.T) {
	h := newHarness(t, nil)
	reg := func(alias, product string, seq int) {
		t.Helper()
		m := ras.RRQ(seq, endpoint(alias, true))
		m.RegistrationRequest.EndpointVendor.ProductId = []byte(product)
		m.RegistrationRequest.TerminalAlias = []h225.AliasAddress{ras.H323ID(alias)} // two endpoints, no alias shared
		h.ep.send(h.ext, m)
		from, in := h.gk.expect(h225.RasMessage_RegistrationRequest)
		h.gk.send(from, ras.RCF(in.RegistrationRequest, insideGKID, "IN-"+alias, gkSignal, 60))
		h.ep.expect(h225.RasMessage_RegistrationConfirm)
	}
	remote := netip.AddrPortFrom(outsideIP, 40000) // a TCP connection of that NAT address
	reg("polycom-room", "Polycom HDX", 10)
	if ka, ok := h.s.keepAlive(remote); !ok || ka.Signalling != "tpkt" || ka.H245 != "none" || !ka.NATed {
		t.Errorf("one Polycom registration: %+v, %v", ka, ok)
	}
	reg("cisco-room", "Cisco SX20", 11)
	if ka, ok := h.s.keepAlive(remote); !ok || ka.Signalling != "facility" || ka.H245 != "tpkt" {
		t.Errorf("Cisco registered last: %+v, %v", ka, ok)
	}
	h.s.mu.Lock()
	h.s.dropRegistration(h.s.regs.byAlias["cisco-room"], "unregistered", "test")
	h.s.mu.Unlock()
	if ka, ok := h.s.keepAlive(remote); !ok || ka.Signalling != "tpkt" || ka.H245 != "none" {
		t.Errorf("Cisco gone, Polycom left: %+v, %v", ka, ok)
	}
	if ka, ok := h.s.keepAlive(netip.MustParseAddrPort("127.0.0.77:40000")); ok {
		t.Errorf("a source without H.460.18 registration: %+v", ka)
	}
}
