package h323proxy

import (
	"context"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/store"
)

// The peers below stand in for real products: endpoint for an outside
// H.323 terminal (a Polycom or Cisco unit behind NAT) and gatekeeper for
// the inside gatekeeper (GnuGk, Polycom DMA, Cisco VCS). They speak RAS
// with the codec's constructors and script the gatekeeper's answers.

// Addresses: outside on 127.0.0.1, Portico's inside socket on 127.0.0.2,
// the gatekeeper on 127.0.0.3. Nothing sent outside may contain the
// inside ones.
var (
	outsideIP     = netip.MustParseAddr("127.0.0.1")
	porticoIn     = netip.MustParseAddr("127.0.0.2")
	gatekeeperIP  = netip.MustParseAddr("127.0.0.3")
	insideSignal  = netip.AddrPortFrom(porticoIn, 1720)
	gkSignal      = netip.AddrPortFrom(gatekeeperIP, 1720)
	insideEPID    = "INSIDE-EP-7"
	insideGKID    = "insideGK"
	epDeclaredSig = netip.MustParseAddrPort("192.0.2.10:1720") // the endpoint's private address behind NAT
)

type peer struct {
	t    *testing.T
	c    *net.UDPConn
	mu   sync.Mutex
	seen [][]byte // every datagram received (the leak check reads it)
}

func newPeer(t *testing.T, ip netip.Addr) *peer {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, c: c}
}

func (p *peer) addr() netip.AddrPort { return addrOf(p.c.LocalAddr()) }

func (p *peer) send(to netip.AddrPort, m *h225.RasMessage) {
	p.t.Helper()
	b, err := m.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.c.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next message (the deadline only stops a hung test).
func (p *peer) recv() (netip.AddrPort, *h225.RasMessage) {
	p.t.Helper()
	buf := make([]byte, 65536)
	p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, a, err := p.c.ReadFromUDPAddrPort(buf)
	if err != nil {
		p.t.Fatalf("%s: no message: %v", p.addr(), err)
	}
	b := append([]byte(nil), buf[:n]...)
	p.mu.Lock()
	p.seen = append(p.seen, b)
	p.mu.Unlock()
	m, err := ras.Parse(b)
	if err != nil {
		p.t.Fatalf("unparsable message from %s: %v", a, err)
	}
	return a, m
}

func (p *peer) expect(choice int) (netip.AddrPort, *h225.RasMessage) {
	p.t.Helper()
	a, m := p.recv()
	if m.Choice != choice {
		p.t.Fatalf("got %s, want %s", ras.Name(m), ras.Name(&h225.RasMessage{Choice: choice}))
	}
	return a, m
}

type fakeHistory struct {
	mu  sync.Mutex
	evs []store.RegistrationEvent
}

func (h *fakeHistory) AddRegistrationEvent(_ context.Context, r store.RegistrationEvent) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.evs = append(h.evs, r)
	return nil
}

type fakeGuard struct {
	mu      sync.Mutex
	blocked map[netip.Addr]bool
	seen    []guard.Kind
}

func (g *fakeGuard) Blocked(a netip.Addr) bool { g.mu.Lock(); defer g.mu.Unlock(); return g.blocked[a] }
func (g *fakeGuard) Observe(_ netip.Addr, k guard.Kind) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, k)
	return false
}
func (g *fakeGuard) kinds() []guard.Kind {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]guard.Kind(nil), g.seen...)
}

type harness struct {
	t    *testing.T
	s    *Server
	ext  netip.AddrPort // Portico's outside RAS
	in   netip.AddrPort // Portico's inside RAS
	ep   *peer
	gk   *peer
	hist *fakeHistory
	g    *fakeGuard
	now  time.Time
	nmu  sync.Mutex
	acl  swapACL
}

// swapACL is an ACL a test may set while the server runs; nil allows all.
type swapACL struct {
	mu sync.Mutex
	a  ACL
}

func (s *swapACL) set(a ACL) { s.mu.Lock(); defer s.mu.Unlock(); s.a = a }
func (s *swapACL) Allow(src netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.a == nil || s.a.Allow(src)
}

func newHarness(t *testing.T, mod func(*Config)) *harness { return newHarnessDeps(t, mod, true) }

// newHarnessDeps is newHarness; observed false leaves history and guard
// out (the fuzz test, whose records would only grow).
func newHarnessDeps(t *testing.T, mod func(*Config), observed bool) *harness {
	h := &harness{t: t, hist: &fakeHistory{}, g: &fakeGuard{blocked: map[netip.Addr]bool{}}, now: time.Unix(1_800_000_000, 0)}
	h.ep = newPeer(t, outsideIP)
	h.gk = newPeer(t, gatekeeperIP)
	ext, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(outsideIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	in, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(porticoIn, 0)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		ExternalRAS: addrOf(ext.LocalAddr()), InternalRAS: addrOf(in.LocalAddr()),
		ExternalSignalPort: 11720, InternalSignal: insideSignal,
		Gatekeeper: h.gk.addr(), GatekeeperID: insideGKID, Traversal: true,
	}
	if mod != nil {
		mod(&cfg)
	}
	deps := Deps{Now: h.clock, ACL: &h.acl}
	if observed {
		deps.History, deps.Guard = h.hist, h.g
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	h.s, h.ext, h.in = s, addrOf(ext.LocalAddr()), addrOf(in.LocalAddr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ext, in) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h
}

func (h *harness) clock() time.Time { h.nmu.Lock(); defer h.nmu.Unlock(); return h.now }
func (h *harness) advance(d time.Duration) time.Time {
	h.nmu.Lock()
	defer h.nmu.Unlock()
	h.now = h.now.Add(d)
	return h.now
}

func (h *harness) extSignal() netip.AddrPort { return netip.AddrPortFrom(outsideIP, 11720) }

func endpoint(alias string, traversal bool) ras.Endpoint {
	e := ras.Endpoint{RAS: netip.MustParseAddrPort("192.0.2.10:1719"), CallSignal: epDeclaredSig,
		Aliases: []h225.AliasAddress{ras.H323ID(alias), ras.E164("4711")}, Terminal: true, Gatekeeper: DefaultOutsideGatekeeper}
	if traversal {
		e.FeatureSet = &h225.FeatureSet{DesiredFeatures: []h225.GenericData{ras.Feature(ras.H46018), ras.Feature(ras.H46023), ras.Feature(ras.H46024)},
			HasDesiredFeatures: true}
	}
	return e
}

// register runs GRQ/RRQ through Portico with the scripted gatekeeper
// confirming; it returns the RCF the endpoint received and the RRQ the
// gatekeeper received.
func (h *harness) register(alias string, traversal bool) (*h225.RegistrationConfirm, *h225.RegistrationRequest) {
	h.t.Helper()
	e := endpoint(alias, traversal)
	h.ep.send(h.ext, ras.GRQ(1, e))
	h.ep.expect(h225.RasMessage_GatekeeperConfirm)
	h.ep.send(h.ext, ras.RRQ(2, e))
	from, m := h.gk.expect(h225.RasMessage_RegistrationRequest)
	rrq := m.RegistrationRequest
	rcf := ras.RCF(rrq, insideGKID, insideEPID, gkSignal, 60)
	h.gk.send(from, rcf)
	_, out := h.ep.expect(h225.RasMessage_RegistrationConfirm)
	return out.RegistrationConfirm, rrq
}

func testutilCount(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }
