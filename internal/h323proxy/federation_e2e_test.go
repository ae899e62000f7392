package h323proxy

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/policy"
)

// partnerEPIP is an endpoint registered with the outside neighbour
// gatekeeper (at neighbourIP).
var partnerEPIP = netip.MustParseAddr("127.0.0.8")

// TestFederatedCalls runs calls between Portico's inside and a neighbour
// gatekeeper's zone, with the shared simulators standing in for real
// products: the inside gatekeeper (gatekeeper-routed, GnuGk-like) and a
// second, outside gatekeeper for the partner's GnuGk or VCS.
//
// In: the neighbour locates an inside alias by LRQ (a raw socket on the
// neighbour's address stands in for its gatekeeper's LRQ), gets Portico's
// outside call-signalling address in the LCF, and a Setup from its address
// to that address reaches the inside endpoint as a federated call.
//
// Out: the inside gatekeeper's LRQ (sent from its address, as GnuGk does
// to a neighbour) for the partner's prefix is located at the neighbour
// gatekeeper; the LCF inside names Portico's inside call-signalling
// address, and the inside endpoint's Setup there is proxied to the
// partner endpoint. RTP crosses the relay both ways in both calls and
// nothing sent outside carries an inside address.
func TestFederatedCalls(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gk := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: gatekeeperIP, TimeToLive: 60, Routed: true})
	defer gk.Close()
	partnerGK := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{ID: "partner-gk", IP: neighbourIP, TimeToLive: 60})
	defer partnerGK.Close()
	nbRAS := newPeer(t, neighbourIP) // the neighbour gatekeeper's LRQ socket
	p := startE2EWith(t, gk, policy.Guest{}, func(c *Config) {
		c.Neighbours = []Neighbour{{Name: "partner", RAS: partnerGK.RASAddr(), Prefixes: []string{"0044"}}}
	})

	inside := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(), IP: insideEPIP})
	defer inside.Close()
	partner := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "00441234", Gatekeeper: partnerGK.RASAddr(), IP: partnerEPIP})
	defer partner.Close()
	for _, ep := range []*h323test.Endpoint{inside, partner} {
		if err := ep.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var outsideMsgs []h323test.Message

	t.Run("neighbour calls inside", func(t *testing.T) {
		nbRAS.send(p.extRAS, ras.LRQ(3, []h225.AliasAddress{ras.E164("2001")}, nbRAS.addr()))
		_, m := nbRAS.expect(h225.RasMessage_LocationConfirm)
		dst := ap(t, &m.LocationConfirm.CallSignalAddress)
		if dst != p.extSig {
			t.Fatalf("LCF callSignalAddress = %v, want Portico's outside %v", dst, p.extSig)
		}
		caller := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "00449876", IP: neighbourIP})
		defer caller.Close()
		c, err := caller.Call(ctx, "2001", h323test.CallOptions{FastStart: true, Direct: dst})
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		in, err := inside.Incoming(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mediaBothWays(t, ctx, c, in, outsideIP, porticoIn)
		c.Hangup()
		<-in.Done()
		outsideMsgs = append(outsideMsgs, c.Messages()...)
		assertNoInside(t, nbRAS)
		p.calls.wait(t, ctx, 1) // recorded before the next call's record
	})

	t.Run("inside calls the neighbour's endpoint", func(t *testing.T) {
		gkRAS := newPeer(t, gatekeeperIP) // the inside gatekeeper's LRQ to its neighbour Portico
		gkRAS.send(p.inRASAddr, ras.LRQ(7, []h225.AliasAddress{ras.E164("00441234")}, gkRAS.addr()))
		_, m := gkRAS.expect(h225.RasMessage_LocationConfirm)
		dst := ap(t, &m.LocationConfirm.CallSignalAddress)
		if dst != p.inSignal {
			t.Fatalf("inside LCF callSignalAddress = %v, want Portico's inside %v", dst, p.inSignal)
		}
		c, err := inside.Call(ctx, "00441234", h323test.CallOptions{FastStart: true, Direct: dst})
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		out, err := partner.Incoming(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mediaBothWays(t, ctx, out, c, outsideIP, porticoIn)
		c.Hangup()
		<-out.Done()
		outsideMsgs = append(outsideMsgs, out.Messages()...)
		for _, m := range partnerGK.Received() {
			if m.Name == "LRQ" {
				outsideMsgs = append(outsideMsgs, m)
			}
		}
	})

	recs := p.calls.wait(t, ctx, 2)
	for i, typ := range []string{policy.CallerFederated, "inbound"} {
		if r := recs[i]; r.CallType != typ || r.Disposition != "normal" {
			t.Errorf("record %d = type %q, disposition %q; want %q, normal", i, r.CallType, r.Disposition, typ)
		}
	}
	checkOutsideFor(t, outsideMsgs, []string{"locationRequest", "setup", "connect", "releaseComplete", "fastStart"})
}
