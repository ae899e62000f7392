package h323test

import (
	"net/netip"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test/sample"
)

// FuzzGatekeeperRAS feeds arbitrary datagrams to the gatekeeper's and the
// endpoint's RAS handling: neither may panic.
func FuzzGatekeeperRAS(f *testing.F) {
	for _, m := range []interface{ Marshal() ([]byte, error) }{sample.RRQ(), sample.RCF(), sample.ARQ()} {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	gk := NewGatekeeper(f, GatekeeperConfig{Callees: []string{"5295672"}})
	ep := NewEndpoint(f, EndpointConfig{Alias: "1001"})
	// answers go to a port nobody reads
	sink := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := rasMessage(b, sink, gk.RASAddr())
		if err != nil {
			return
		}
		// LRQ answers go to its replyAddress and an SCI makes the endpoint
		// connect to the address inside: keep fuzzed traffic on loopback
		switch m.RAS.Choice {
		case h225.RasMessage_LocationRequest, h225.RasMessage_ServiceControlIndication:
			return
		}
		gk.handle(m)
		ep.handleRequest(m)
	})
}

// FuzzParseQ931 feeds arbitrary call-signalling payloads to the parser the
// simulator uses on every TPKT packet.
func FuzzParseQ931(f *testing.F) {
	setup, err := sample.Q931(0x05, false, sample.SetupUUIE())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(setup)
	ap := netip.MustParseAddrPort("127.0.0.1:1720")
	f.Fuzz(func(t *testing.T, b []byte) {
		parseQ931(b, ap, ap)
	})
}
