package h323proxy

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// FuzzRAS feeds arbitrary datagrams to both RAS entry points of a serving
// proxy (outside from an endpoint, inside from the gatekeeper's address):
// nothing may panic, and the table stays within its bound.
func FuzzRAS(f *testing.F) {
	id := bytes.Repeat([]byte{1}, 16)
	for _, m := range []*h225.RasMessage{
		ras.GRQ(1, endpoint("a", true)),
		ras.RRQ(2, endpoint("a", true)),
		ras.ARQ(3, "0011223344556677", nil, []h225.AliasAddress{ras.E164("1")}, 1, 1, id, id, false),
		ras.LRQ(4, []h225.AliasAddress{ras.E164("1")}, netip.MustParseAddrPort("192.0.2.1:1719")),
		ras.URQ(5, ras.Endpoint{EndpointID: insideEPID}),
		ras.LCF(ras.LRQ(1, nil, netip.AddrPort{}).LocationRequest, netip.MustParseAddrPort("127.0.0.9:1720"), netip.MustParseAddrPort("127.0.0.9:5000")),
		ras.LRJ(ras.LRQ(2, nil, netip.AddrPort{}).LocationRequest, h225.LocationRejectReason_HopCountExceeded),
	} {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	h := newHarnessDeps(&testing.T{}, func(c *Config) {
		c.MaxRegistrations = 4
		// The fuzzed outside source is a neighbour serving "1": inside
		// LRQs go to it and its LCFs and LRJs are matched.
		c.Neighbours = []Neighbour{{RAS: netip.MustParseAddrPort("127.0.0.9:5000"), Prefixes: []string{"1"}}}
	}, false)
	f.Cleanup(func() { h.s.Close() })
	src := netip.MustParseAddrPort("127.0.0.9:5000")
	f.Fuzz(func(t *testing.T, b []byte, inside bool) {
		if len(b) > maxDatagram {
			return
		}
		if inside {
			h.s.handleInternal(h.gk.addr(), b)
		} else {
			h.s.handleExternal(src, b)
		}
		h.s.mu.Lock()
		n := h.s.regs.len()
		h.s.mu.Unlock()
		if n > 4 {
			t.Fatalf("%d registrations, bound 4", n)
		}
	})
}

// FuzzFacilityCallID: the first message of an H.460.18 endpoint's
// connection is read by FacilityCallID; it never panics, and what it
// accepts round-trips to the same call identifier.
func FuzzFacilityCallID(f *testing.F) {
	t := &testing.T{}
	f.Add(facility(t, bytes.Repeat([]byte{5}, 16)))
	f.Add([]byte{0x08, 0x02, 0x00, 0x01, 0x62})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, ok := FacilityCallID(b)
		if !ok {
			return
		}
		again, ok := FacilityCallID(facility(t, id[:]))
		if !ok || again != id {
			t.Fatalf("call identifier %x did not round-trip (%x, %v)", id, again, ok)
		}
	})
}

// FuzzZoneDatagram feeds arbitrary datagrams from a traversal zone's
// server to Portico's traversal client: nothing may panic, and answers
// (SCR, UCF, IRR, DCF) go only to the server.
func FuzzZoneDatagram(f *testing.F) {
	id := bytes.Repeat([]byte{2}, 16)
	g, err := ras.IncomingCall(ras.IncomingCallIndication{CallSignal: netip.MustParseAddrPort("127.0.0.141:1720"), CallID: id})
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range []*h225.RasMessage{
		ras.SCI(1, ras.Supported(g)),
		ras.URQ(2, ras.Endpoint{EndpointID: "EP-1"}),
		ras.IRQ(3, 1, netip.MustParseAddrPort("127.0.0.141:1719")),
		ras.DRQ(4, ras.Call{EndpointID: "EP-1", ID: id, ConferenceID: id}, 0),
		ras.RCF(ras.RRQ(5, endpoint("a", true)).RegistrationRequest, "gk", "EP-1", netip.MustParseAddrPort("127.0.0.141:1720"), 1),
	} {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	server := netip.MustParseAddrPort("127.0.0.141:1719")
	h := newHarnessDeps(&testing.T{}, func(c *Config) {
		c.Zones = []Zone{{Name: "z", Server: server, Aliases: []string{"a"}, Prefixes: []string{"9"}}}
	}, false)
	f.Cleanup(func() { h.s.Close() })
	zc := h.s.zones[0]
	for {
		zc.mu.Lock()
		c := zc.conn
		zc.mu.Unlock()
		if c != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		zc.datagram(context.Background(), server, b)
	})
}
