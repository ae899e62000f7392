package sipedge

import (
	"slices"
	"testing"

	"github.com/portico-edge/portico/internal/policy"
)

// TestReload: a guest refused by the running policy reaches the inside
// after Reload adds the alias, while a registration made before the reload
// stays; fields that need a restart are named and keep their running
// values; an invalid config changes nothing; a kept call server keeps its
// health and a new one is listed.
func TestReload(t *testing.T) {
	k := startKamailio(t, 64)
	cfg := Config{CallServers: kamailioServer(k), Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}}}
	p := startPortico(t, cfg)
	cfg = p.s.cfg // as started, with the harness's listeners and defaults
	ext := udpAddr(p.extUDP.String())
	carol, _ := registeredPair(t, p, k, "rl")
	guest := newRawUA(t, outsideIP, "rlguest")
	callCarol := func() int {
		t.Helper()
		done := make(chan int, 1)
		go func() {
			res := guest.invite(ext, "sip:rlcarol@portico.test", guest.sdp(""), "")
			guest.ackNon2xx(res, "sip:rlcarol@portico.test")
			done <- res.StatusCode
		}()
		return <-done
	}
	if code := callCarol(); code != 403 {
		t.Fatalf("guest to rlcarol before the reload: %d, want 403", code)
	}

	next := cfg
	next.Guest.Aliases = []string{"rlcarol"}
	next.CallServers = append(slices.Clone(cfg.CallServers), CallServer{Address: "127.0.0.9:5999", Transport: "udp", Priority: 9})
	next.Listeners = append(slices.Clone(cfg.Listeners), Listener{Interface: External, Transport: "tcp", Address: outsideIP + ":5999"})
	next.Domain = "elsewhere.test"
	restart, err := p.s.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(restart, []string{"sip.listeners", "sip.domain"}) {
		t.Errorf("restart = %v, want sip.listeners and sip.domain", restart)
	}
	if p.s.lc().cfg.Domain != cfg.Domain || len(p.s.lc().cfg.Listeners) != len(cfg.Listeners) {
		t.Errorf("restart-only fields changed while running: domain %q, %d listeners", p.s.lc().cfg.Domain, len(p.s.lc().cfg.Listeners))
	}
	done := make(chan int, 1)
	go func() { done <- callCarol() }()
	inv := carol.expect("INVITE")
	carol.reply(inv, 486, "Busy Here", "rl1", "")
	if code := <-done; code != 486 {
		t.Fatalf("guest to rlcarol after the reload: %d, want carol's 486", code)
	}
	servers := p.s.CallServers()
	if len(servers) != 2 || !servers[0].Up || servers[1].Address != "127.0.0.9:5999" {
		t.Errorf("call servers after reload = %+v", servers)
	}
	found := false
	for _, r := range p.s.Registrations() {
		found = found || r.AOR == "sip:rldave@portico.test"
	}
	if !found {
		t.Errorf("registration lost by the reload: %+v", p.s.Registrations())
	}

	bad := next
	bad.Guest.VMRRanges = []string{"9-1"}
	if _, err := p.s.Reload(bad); err == nil {
		t.Fatal("Reload accepted an invalid range")
	}
	if d := p.s.lc().policy.Evaluate(policy.Call{Caller: policy.CallerGuest, To: "rlcarol"}); !d.Allowed() || len(p.s.lc().cfg.Guest.VMRRanges) != 1 {
		t.Error("a refused Reload changed the running policy")
	}
}
