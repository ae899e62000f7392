package snmp

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// startTrapd runs snmptrapd accepting v2c community "trapcomm", the v3
// user "monitor" for traps from engineID, and the same user for informs
// to its own engine.
func startTrapd(t *testing.T, engineID []byte) *testpeer.Trapd {
	return testpeer.StartSnmptrapd(t, fmt.Sprintf(`authCommunity log trapcomm
createUser -e 0x%s monitor SHA-256 %s AES %s
createUser monitor SHA-256 %s AES %s
authUser log monitor priv
`, hex.EncodeToString(engineID), testAuth, testPriv, testAuth, testPriv))
}

// switchProvider is a snapshot the test changes.
type switchProvider struct {
	mu sync.Mutex
	s  Snapshot
}

func (p *switchProvider) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.s
}

func (p *switchProvider) set(f func(*Snapshot)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.s)
}

// TestNotifications: snmptrapd receives every notification as a v2c
// trap, a v2c inform, a v3 authPriv trap and a v3 authPriv inform. The
// state notifications come from changes of the provider's snapshot; the
// login lockout is queued by Notify as the node's event hook does.
func TestNotifications(t *testing.T) {
	sec := testSection()
	sec.Listen = []string{fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))}
	prov := &switchProvider{s: testSnapshot()}
	prov.set(func(s *Snapshot) {
		s.HA = "backup"
		s.Services = []Service{{Name: "sip", Up: true}}
		s.CapacityRefused = map[string]uint64{"turn total_quota": 0}
		s.Certificates = append(s.Certificates, Certificate{Name: "edge-cert", NotAfter: time.Now().Add(10 * 24 * time.Hour)})
	})
	// The receivers are set once snmptrapd knows the engine ID.
	probe, err := New(sec, Env{Node: "edge-1"}, Deps{Provider: prov})
	if err != nil {
		t.Fatal(err)
	}
	d := startTrapd(t, probe.EngineID())
	sec.Traps = []Receiver{
		{Address: d.Addr, Community: "trapcomm"},
		{Address: d.Addr, Community: "trapcomm", Inform: true},
		{Address: d.Addr, Version: "v3", User: "monitor"},
		{Address: d.Addr, Version: "v3", User: "monitor", Inform: true},
	}
	a := newTestAgent(t, sec, prov)
	a.notes.every = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	count := func(k Kind) int {
		return strings.Count(d.Log(), "OID: "+oidNotifications.child(uint32(k)).String()+"\t") +
			strings.Count(d.Log(), "OID: "+oidNotifications.child(uint32(k)).String()+"\n")
	}
	waitFor := func(kinds ...Kind) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			missing := []string{}
			for _, k := range kinds {
				if n := count(k); n < len(sec.Traps) {
					missing = append(missing, fmt.Sprintf("%s (%d of %d)", k, n, len(sec.Traps)))
				}
			}
			if len(missing) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("snmptrapd did not get %v; failed %d; log:\n%s", missing, a.stats.failed.Load(), d.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(CertificateExpiring)
	prov.set(func(s *Snapshot) {
		s.Services = []Service{{Name: "sip", Up: false, Error: "listener failed"}}
		s.StoreUp = false
		s.HA = "master"
		s.CapacityRefused = map[string]uint64{"turn total_quota": 3}
	})
	waitFor(ServiceDown, StoreLost, HATransition, CapacityReached)
	prov.set(func(s *Snapshot) {
		s.Services = []Service{{Name: "sip", Up: true}}
		s.StoreUp = true
	})
	a.Notify(Notification{Kind: LoginLockout, Component: "management", Message: "account admin locked"})
	waitFor(ServiceUp, StoreRegained, LoginLockout)
	log := d.Log()
	for _, want := range []string{`"sip down: listener failed"`, `"ha backup -> master"`, `"account admin locked"`, `"edge-1"`} {
		if !strings.Contains(log, want) {
			t.Errorf("snmptrapd log lacks %s", want)
		}
	}
	if n := count(CertificateExpiring); n != len(sec.Traps) {
		t.Errorf("certificateExpiring sent %d times, want once per receiver (%d)", n, len(sec.Traps))
	}
	if f := a.stats.failed.Load(); f != 0 {
		t.Errorf("%d notifications failed", f)
	}
}

// TestNotifyWrongKeyNotLogged: a v3 trap signed with a key snmptrapd does
// not have for the user is not logged by it.
func TestNotifyWrongKeyNotLogged(t *testing.T) {
	sec := testSection()
	sec.Listen = []string{fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))}
	sec.Users[0].AuthKey = "another-auth-key"
	prov := &switchProvider{s: testSnapshot()}
	probe, err := New(sec, Env{Node: "edge-1"}, Deps{Provider: prov})
	if err != nil {
		t.Fatal(err)
	}
	d := startTrapd(t, probe.EngineID())
	sec.Traps = []Receiver{{Address: d.Addr, Version: "v3", User: "monitor"}, {Address: d.Addr, Community: "trapcomm"}}
	a := newTestAgent(t, sec, prov)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	a.Notify(Notification{Kind: LoginLockout, Component: "management", Message: "marker"})
	// The v2c copy, sent after the v3 one, shows both were processed.
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(d.Log(), `"marker"`) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("v2c trap not received:\n%s", d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(d.Log(), `"marker"`); n != 1 {
		t.Errorf("marker logged %d times; the wrongly signed v3 trap was accepted:\n%s", n, d.Log())
	}
}
