package h323proxy

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/h323proxy/callsig"
	"github.com/portico-edge/portico/internal/policy"
)

// neighbourIP is the outside neighbour gatekeeper's address: the peer
// there stands in for a partner's gatekeeper (GnuGk, Cisco VCS) that
// Portico federates with.
var neighbourIP = netip.MustParseAddr("127.0.0.7")

// newFederation starts the harness with a neighbour peer configured for
// the prefix "0044" and the domain partner.example.
func newFederation(t *testing.T, mod func(*Config)) (*harness, *peer) {
	t.Helper()
	nb := newPeer(t, neighbourIP)
	h := newHarness(t, func(c *Config) {
		c.Neighbours = []Neighbour{{Name: "partner", RAS: nb.addr(), Prefixes: []string{"0044"}, Domains: []string{"partner.example"}}}
		if mod != nil {
			mod(c)
		}
	})
	return h, nb
}

// TestNeighbourLocationAnswered: a neighbour's LRQ is relayed inside and
// the LCF it gets names Portico's outside addresses; an LRJ's reason
// passes through; a Setup from the neighbour's IP is a federated call.
func TestNeighbourLocationAnswered(t *testing.T) {
	h, nb := newFederation(t, nil)
	nb.send(h.ext, ras.LRQ(5, []h225.AliasAddress{ras.E164("8001")}, nb.addr()))
	from, m := h.gk.expect(h225.RasMessage_LocationRequest)
	if got := ap(t, &m.LocationRequest.ReplyAddress); got.Addr() != porticoIn {
		t.Errorf("inside LRQ replyAddress = %v, want Portico's inside address", got)
	}
	h.gk.send(from, ras.LCF(m.LocationRequest, gkSignal, netip.AddrPortFrom(gatekeeperIP, 1719)))
	_, out := nb.expect(h225.RasMessage_LocationConfirm)
	if out.LocationConfirm.RequestSeqNum != 5 {
		t.Errorf("LCF seq = %d, want 5", out.LocationConfirm.RequestSeqNum)
	}
	if got := ap(t, &out.LocationConfirm.CallSignalAddress); got != h.extSignal() {
		t.Errorf("LCF callSignalAddress = %v, want %v", got, h.extSignal())
	}
	if got := ap(t, &out.LocationConfirm.RasAddress); got != h.ext {
		t.Errorf("LCF rasAddress = %v, want %v", got, h.ext)
	}

	nb.send(h.ext, ras.LRQ(6, []h225.AliasAddress{ras.E164("8002")}, nb.addr()))
	from, m = h.gk.expect(h225.RasMessage_LocationRequest)
	h.gk.send(from, ras.LRJ(m.LocationRequest, h225.LocationRejectReason_HopCountExceeded))
	_, out = nb.expect(h225.RasMessage_LocationReject)
	if r := out.LocationReject.RejectReason.Choice; r != h225.LocationRejectReason_HopCountExceeded {
		t.Errorf("LRJ reason = %d, want hopCountExceeded", r)
	}
	assertNoInside(t, nb)

	if got := h.s.caller(callsig.CallInfo{Source: neighbourIP}); got != policy.CallerFederated {
		t.Errorf("caller kind of the neighbour = %q, want federated", got)
	}
	if got := h.s.caller(callsig.CallInfo{Source: netip.MustParseAddr("127.0.0.9")}); got != policy.CallerGuest {
		t.Errorf("caller kind of another source = %q, want guest", got)
	}
}

// TestNonNeighbourLocationRefused: an LRQ from a source that is neither
// a neighbour nor registered is answered LRJ requestDenied, scored, and
// never reaches the inside; with open_b2b it is relayed, and a Setup
// from that source then counts as federated.
func TestNonNeighbourLocationRefused(t *testing.T) {
	stranger := netip.MustParseAddr("127.0.0.8")
	t.Run("refused", func(t *testing.T) {
		h, _ := newFederation(t, nil)
		p := newPeer(t, stranger)
		p.send(h.ext, ras.LRQ(9, []h225.AliasAddress{ras.E164("8001")}, p.addr()))
		_, out := p.expect(h225.RasMessage_LocationReject)
		if r := out.LocationReject.RejectReason.Choice; r != h225.LocationRejectReason_RequestDenied {
			t.Errorf("LRJ reason = %d, want requestDenied", r)
		}
		if !slices.Contains(h.g.kinds(), guard.Forbidden) {
			t.Errorf("guard saw %v, want forbidden scored", h.g.kinds())
		}
		// The next thing the gatekeeper sees is a registered endpoint's
		// LRQ, not the stranger's.
		h.register("erin", false)
		h.ep.send(h.ext, ras.LRQ(3, []h225.AliasAddress{ras.E164("2002")}, h.ep.addr()))
		_, m := h.gk.expect(h225.RasMessage_LocationRequest)
		if s, _ := ras.AliasString(&m.LocationRequest.DestinationInfo[0]); s != "2002" {
			t.Errorf("the gatekeeper got an LRQ for %q, want the registered endpoint's 2002", s)
		}
		if got := h.s.caller(callsig.CallInfo{Source: stranger}); got != policy.CallerGuest {
			t.Errorf("caller kind = %q, want guest", got)
		}
	})
	t.Run("open_b2b", func(t *testing.T) {
		h, _ := newFederation(t, func(c *Config) { c.OpenB2B = true })
		p := newPeer(t, stranger)
		p.send(h.ext, ras.LRQ(9, []h225.AliasAddress{ras.E164("8001")}, p.addr()))
		from, m := h.gk.expect(h225.RasMessage_LocationRequest)
		h.gk.send(from, ras.LCF(m.LocationRequest, gkSignal, netip.AddrPortFrom(gatekeeperIP, 1719)))
		_, out := p.expect(h225.RasMessage_LocationConfirm)
		if got := ap(t, &out.LocationConfirm.CallSignalAddress); got != h.extSignal() {
			t.Errorf("LCF callSignalAddress = %v", got)
		}
		assertNoInside(t, p)
		if got := h.s.caller(callsig.CallInfo{Source: stranger}); got != policy.CallerFederated {
			t.Errorf("caller kind = %q, want federated", got)
		}
	})
}

// TestOutboundLocationToNeighbour: the inside gatekeeper's LRQ (Portico
// is its neighbour) for an alias a neighbour serves goes to that
// neighbour from Portico's outside address; its LCF reaches the inside
// naming Portico's inside call-signalling address, and the call-signalling
// proxy then finds the neighbour's address for the alias. Other aliases
// are rejected notRegistered; a neighbour's LRJ reason passes through.
func TestOutboundLocationToNeighbour(t *testing.T) {
	h, nb := newFederation(t, nil)
	partnerSignal := netip.AddrPortFrom(neighbourIP, 11721)
	for _, tc := range []struct {
		name, alias string
		seq         int
	}{{"prefix", "00441234", 40}, {"domain", "bob@Partner.example", 41}} {
		t.Run(tc.name, func(t *testing.T) {
			alias := ras.E164(tc.alias)
			if tc.name == "domain" {
				alias = ras.H323ID(tc.alias)
			}
			lrq := ras.LRQ(tc.seq, []h225.AliasAddress{alias}, netip.AddrPortFrom(gatekeeperIP, 1719))
			lrq.LocationRequest.SourceInfo, lrq.LocationRequest.HasSourceInfo = []h225.AliasAddress{ras.H323ID("alice")}, true
			h.gk.send(h.in, lrq)
			from, m := nb.expect(h225.RasMessage_LocationRequest)
			if from != h.ext {
				t.Errorf("LRQ to the neighbour came from %v, want %v", from, h.ext)
			}
			if got := ap(t, &m.LocationRequest.ReplyAddress); got != h.ext {
				t.Errorf("LRQ replyAddress = %v, want %v", got, h.ext)
			}
			nb.send(from, ras.LCF(m.LocationRequest, partnerSignal, nb.addr()))
			_, in := h.gk.expect(h225.RasMessage_LocationConfirm)
			if in.LocationConfirm.RequestSeqNum != h225.RequestSeqNum(tc.seq) {
				t.Errorf("inside LCF seq = %d, want %d", in.LocationConfirm.RequestSeqNum, tc.seq)
			}
			if got := ap(t, &in.LocationConfirm.CallSignalAddress); got != insideSignal {
				t.Errorf("inside LCF callSignalAddress = %v, want %v", got, insideSignal)
			}
			ep, ok := registry{h.s}.Outside(tc.alias)
			if !ok || ep.CallSignal != partnerSignal || ep.H46018 {
				t.Errorf("route for %q = %+v %v, want %v", tc.alias, ep, ok, partnerSignal)
			}
		})
	}
	t.Run("no neighbour", func(t *testing.T) {
		h.gk.send(h.in, ras.LRQ(50, []h225.AliasAddress{ras.E164("0033777")}, netip.AddrPortFrom(gatekeeperIP, 1719)))
		_, m := h.gk.expect(h225.RasMessage_LocationReject)
		if m.LocationReject.RequestSeqNum != 50 || m.LocationReject.RejectReason.Choice != h225.LocationRejectReason_NotRegistered {
			t.Errorf("LRJ = %+v, want seq 50 notRegistered", m.LocationReject)
		}
		if _, ok := (registry{h.s}).Outside("0033777"); ok {
			t.Error("an alias no neighbour confirmed has a route")
		}
	})
	t.Run("neighbour rejects", func(t *testing.T) {
		h.gk.send(h.in, ras.LRQ(51, []h225.AliasAddress{ras.E164("00449999")}, netip.AddrPortFrom(gatekeeperIP, 1719)))
		from, m := nb.expect(h225.RasMessage_LocationRequest)
		nb.send(from, ras.LRJ(m.LocationRequest, h225.LocationRejectReason_NotRegistered))
		_, in := h.gk.expect(h225.RasMessage_LocationReject)
		if in.LocationReject.RequestSeqNum != 51 || in.LocationReject.RejectReason.Choice != h225.LocationRejectReason_NotRegistered {
			t.Errorf("inside LRJ = %+v, want seq 51 notRegistered", in.LocationReject)
		}
	})
	t.Run("hop count", func(t *testing.T) {
		lrq := ras.LRQ(53, []h225.AliasAddress{ras.E164("00447777")}, netip.AddrPortFrom(gatekeeperIP, 1719))
		lrq.LocationRequest.HopCount, lrq.LocationRequest.HasHopCount = 3, true
		h.gk.send(h.in, lrq)
		_, m := nb.expect(h225.RasMessage_LocationRequest)
		if !m.LocationRequest.HasHopCount || m.LocationRequest.HopCount != 2 {
			t.Errorf("hopCount to the neighbour = %d (present %v), want 2", m.LocationRequest.HopCount, m.LocationRequest.HasHopCount)
		}
		nb.send(h.ext, ras.LRJ(m.LocationRequest, h225.LocationRejectReason_NotRegistered))
		h.gk.expect(h225.RasMessage_LocationReject)
		lrq.LocationRequest.RequestSeqNum, lrq.LocationRequest.HopCount = 54, 1
		h.gk.send(h.in, lrq)
		_, in := h.gk.expect(h225.RasMessage_LocationReject)
		if in.LocationReject.RequestSeqNum != 54 || in.LocationReject.RejectReason.Choice != h225.LocationRejectReason_HopCountExceeded {
			t.Errorf("LRJ = %+v, want seq 54 hopCountExceeded", in.LocationReject)
		}
		// From the neighbour: the last hop is refused, others decremented.
		in1 := ras.LRQ(55, []h225.AliasAddress{ras.E164("8001")}, nb.addr())
		in1.LocationRequest.HopCount, in1.LocationRequest.HasHopCount = 1, true
		nb.send(h.ext, in1)
		_, out := nb.expect(h225.RasMessage_LocationReject)
		if out.LocationReject.RejectReason.Choice != h225.LocationRejectReason_HopCountExceeded {
			t.Errorf("LRJ reason = %d, want hopCountExceeded", out.LocationReject.RejectReason.Choice)
		}
		in1.LocationRequest.RequestSeqNum, in1.LocationRequest.HopCount = 56, 4
		nb.send(h.ext, in1)
		_, m = h.gk.expect(h225.RasMessage_LocationRequest)
		if m.LocationRequest.HopCount != 3 {
			t.Errorf("hopCount inside = %d, want 3", m.LocationRequest.HopCount)
		}
		h.gk.send(h.in, ras.LRJ(m.LocationRequest, h225.LocationRejectReason_NotRegistered))
		nb.expect(h225.RasMessage_LocationReject)
	})
	t.Run("LCF naming Portico refused", func(t *testing.T) {
		for i, dst := range []netip.AddrPort{h.extSignal(), insideSignal} {
			seq := 57 + i
			h.gk.send(h.in, ras.LRQ(seq, []h225.AliasAddress{ras.E164("00446666")}, netip.AddrPortFrom(gatekeeperIP, 1719)))
			from, m := nb.expect(h225.RasMessage_LocationRequest)
			nb.send(from, ras.LCF(m.LocationRequest, dst, nb.addr()))
			_, in := h.gk.expect(h225.RasMessage_LocationReject)
			if in.LocationReject.RequestSeqNum != h225.RequestSeqNum(seq) {
				t.Errorf("answer seq %d, want %d", in.LocationReject.RequestSeqNum, seq)
			}
			if _, ok := (registry{h.s}).Outside("00446666"); ok {
				t.Errorf("an LCF naming Portico's %v routed the alias", dst)
			}
		}
	})
	t.Run("answer from elsewhere ignored", func(t *testing.T) {
		h.gk.send(h.in, ras.LRQ(52, []h225.AliasAddress{ras.E164("00448888")}, netip.AddrPortFrom(gatekeeperIP, 1719)))
		from, m := nb.expect(h225.RasMessage_LocationRequest)
		// A forged LCF from another outside address must not route the
		// alias; the neighbour's own LRJ then answers.
		h.ep.send(from, ras.LCF(m.LocationRequest, netip.AddrPortFrom(outsideIP, 9), h.ep.addr()))
		nb.send(from, ras.LRJ(m.LocationRequest, h225.LocationRejectReason_RequestDenied))
		_, in := h.gk.expect(h225.RasMessage_LocationReject)
		if in.LocationReject.RequestSeqNum != 52 {
			t.Errorf("inside answer seq = %d, want 52", in.LocationReject.RequestSeqNum)
		}
		if _, ok := (registry{h.s}).Outside("00448888"); ok {
			t.Error("a forged LCF routed the alias")
		}
	})
	assertNoInside(t, nb)
}

// TestNeighbourRetransmissionAndReload: the gatekeeper's repeated LRQ is
// repeated to the neighbour under the same sequence number and answered
// once; a neighbour added by Reload is accepted without a restart.
func TestNeighbourRetransmissionAndReload(t *testing.T) {
	h, nb := newFederation(t, nil)
	lrq := ras.LRQ(70, []h225.AliasAddress{ras.E164("00445555")}, netip.AddrPortFrom(gatekeeperIP, 1719))
	h.gk.send(h.in, lrq)
	_, first := nb.expect(h225.RasMessage_LocationRequest)
	h.gk.send(h.in, lrq)
	_, again := nb.expect(h225.RasMessage_LocationRequest)
	if again.LocationRequest.RequestSeqNum != first.LocationRequest.RequestSeqNum {
		t.Errorf("repeated LRQ seq %d, first %d", again.LocationRequest.RequestSeqNum, first.LocationRequest.RequestSeqNum)
	}
	nb.send(h.ext, ras.LRJ(first.LocationRequest, h225.LocationRejectReason_NotRegistered))
	nb.send(h.ext, ras.LRJ(again.LocationRequest, h225.LocationRejectReason_NotRegistered))
	_, m := h.gk.expect(h225.RasMessage_LocationReject)
	if m.LocationReject.RequestSeqNum != 70 {
		t.Errorf("LRJ seq %d, want 70", m.LocationReject.RequestSeqNum)
	}

	other := newPeer(t, netip.MustParseAddr("127.0.0.10"))
	other.send(h.ext, ras.LRQ(1, []h225.AliasAddress{ras.E164("8001")}, other.addr()))
	other.expect(h225.RasMessage_LocationReject)
	h.s.mu.Lock()
	cfg := h.s.cfg
	h.s.mu.Unlock()
	cfg.Neighbours = append(slices.Clone(cfg.Neighbours), Neighbour{Name: "second", RAS: other.addr()})
	if restart, err := h.s.Reload(cfg); err != nil || len(restart) != 0 {
		t.Fatalf("Reload = %v, %v", restart, err)
	}
	other.send(h.ext, ras.LRQ(2, []h225.AliasAddress{ras.E164("8001")}, other.addr()))
	from, lrq2 := h.gk.expect(h225.RasMessage_LocationRequest)
	if s, _ := ras.AliasString(&lrq2.LocationRequest.DestinationInfo[0]); s != "8001" {
		t.Errorf("the gatekeeper got an LRQ for %q, want 8001", s)
	}
	h.gk.send(from, ras.LCF(lrq2.LocationRequest, gkSignal, netip.AddrPortFrom(gatekeeperIP, 1719)))
	other.expect(h225.RasMessage_LocationConfirm)
}
