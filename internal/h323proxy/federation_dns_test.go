package h323proxy

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// dnsZone is a loopback DNS server answering SRV and A questions from
// its maps (names end with a dot); anything else is NXDOMAIN. Once
// started, the maps change only through set.
type dnsZone struct {
	mu      sync.Mutex
	srv     map[string]dnsmessage.SRVResource
	a       map[string]netip.Addr
	queries atomic.Int64
}

// set changes the A record of name while the server runs.
func (z *dnsZone) set(name string, a netip.Addr) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.a[name] = a
}

func (z *dnsZone) start(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(outsideIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			z.queries.Add(1)
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
				continue
			}
			qq := q.Questions[0]
			name := strings.ToLower(qq.Name.String())
			hdr := dnsmessage.Header{ID: q.ID, Response: true, Authoritative: true}
			z.mu.Lock()
			srv, okS := z.srv[name]
			a, okA := z.a[name]
			z.mu.Unlock()
			if !okS && !okA {
				hdr.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, hdr)
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(qq)
			_ = b.StartAnswers()
			rh := dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 60}
			switch {
			case qq.Type == dnsmessage.TypeSRV && okS:
				_ = b.SRVResource(rh, srv)
			case qq.Type == dnsmessage.TypeA && okA:
				_ = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
			}
			out, err := b.Finish()
			if err == nil {
				_, _ = c.WriteToUDPAddrPort(out, from)
			}
		}
	}()
	return addrOf(c.LocalAddr())
}

// TestOutboundLocationByDNS: with open_b2b, the inside gatekeeper's LRQ
// for alias@domain that no neighbour serves goes to the gatekeeper the
// domain's _h323ls._udp SRV record names (a loopback DNS server here);
// its LCF routes the call as a configured neighbour's does. A domain
// without the record is answered LRJ notRegistered; without open_b2b DNS
// is not asked.
func TestOutboundLocationByDNS(t *testing.T) {
	nb := newPeer(t, neighbourIP) // the domain's gatekeeper
	zone := &dnsZone{
		srv: map[string]dnsmessage.SRVResource{"_h323ls._udp.partner.example.": {Priority: 10, Weight: 1, Port: nb.addr().Port(),
			Target: dnsmessage.MustNewName("gk.partner.example.")}},
		a: map[string]netip.Addr{"gk.partner.example.": neighbourIP},
	}
	dns := zone.start(t)
	partnerSignal := netip.AddrPortFrom(neighbourIP, 11721)
	gkRAS := netip.AddrPortFrom(gatekeeperIP, 1719)

	t.Run("open_b2b", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.OpenB2B, c.DNSServer = true, dns })
		h.gk.send(h.in, ras.LRQ(60, []h225.AliasAddress{ras.H323ID("bob@partner.example")}, gkRAS))
		from, m := nb.expect(h225.RasMessage_LocationRequest)
		if from != h.ext {
			t.Errorf("LRQ came from %v, want %v", from, h.ext)
		}
		nb.send(from, ras.LCF(m.LocationRequest, partnerSignal, nb.addr()))
		_, in := h.gk.expect(h225.RasMessage_LocationConfirm)
		if got := ap(t, &in.LocationConfirm.CallSignalAddress); got != insideSignal || in.LocationConfirm.RequestSeqNum != 60 {
			t.Errorf("inside LCF = seq %d, %v; want 60, %v", in.LocationConfirm.RequestSeqNum, got, insideSignal)
		}
		if ep, ok := (registry{h.s}).Outside("bob@partner.example"); !ok || ep.CallSignal != partnerSignal {
			t.Errorf("route = %+v %v, want %v", ep, ok, partnerSignal)
		}
		h.gk.send(h.in, ras.LRQ(61, []h225.AliasAddress{ras.H323ID("carol@nowhere.example")}, gkRAS))
		_, lrj := h.gk.expect(h225.RasMessage_LocationReject)
		if lrj.LocationReject.RequestSeqNum != 61 || lrj.LocationReject.RejectReason.Choice != h225.LocationRejectReason_NotRegistered {
			t.Errorf("LRJ = %+v, want seq 61 notRegistered", lrj.LocationReject)
		}
		assertNoInside(t, nb)
	})
	t.Run("closed", func(t *testing.T) {
		before := zone.queries.Load()
		h := newHarness(t, func(c *Config) { c.DNSServer = dns })
		h.gk.send(h.in, ras.LRQ(62, []h225.AliasAddress{ras.H323ID("bob@partner.example")}, gkRAS))
		_, lrj := h.gk.expect(h225.RasMessage_LocationReject)
		if lrj.LocationReject.RejectReason.Choice != h225.LocationRejectReason_NotRegistered {
			t.Errorf("LRJ reason %d, want notRegistered", lrj.LocationReject.RejectReason.Choice)
		}
		if n := zone.queries.Load() - before; n != 0 {
			t.Errorf("%d DNS queries without open_b2b", n)
		}
	})
}
