package sipedge

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// TestRegistrationSurvivesFailover: an outside endpoint registers over UDP
// through node A to Kamailio. A's binding is exported and imported by node
// B (what the HA sync link carries, package hasync), A stops and B takes
// A's addresses (the VIP moving). An inside caller then calls the endpoint
// through Kamailio, whose stored Path leads to B: B reads the flow token A
// made (both nodes key flow tokens alike) and the call reaches the
// endpoint with no new registration; the endpoint's next REGISTER through
// B refreshes the same binding instead of creating one.
func TestRegistrationSurvivesFailover(t *testing.T) {
	k := startKamailio(t, 64)
	flowKey := []byte("flow key shared by the two nodes")
	var mu sync.Mutex
	var announced []string
	a := startPortico(t, Config{CallServers: kamailioServer(k)}, func(s *Server) {
		s.flows = &flowCodec{key: flowKey}
		s.deps.OnRegistration = func(key string) { mu.Lock(); announced = append(announced, key); mu.Unlock() }
	})
	port := freePort(t)
	if code := registerFrom(t, a.extUDP.String(), "carol", outsideIP+":"+port, 3600); code != 200 {
		t.Fatalf("REGISTER through A answered %d", code)
	}
	waitRegistered(t, a, "carol")
	keys := a.s.RegistrationKeys()
	mu.Lock()
	if len(keys) != 1 || len(announced) == 0 || announced[len(announced)-1] != keys[0] {
		t.Fatalf("keys %q, announced %q", keys, announced)
	}
	mu.Unlock()
	st, ok := a.s.ExportRegistration(keys[0])
	if !ok || st.Flow.Transport != "udp" || st.Flow.Source.String() != outsideIP+":"+port {
		t.Fatalf("export: %+v %v", st, ok)
	}
	body, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	a.stop()

	var announcedB []string
	b := startPorticoAt(t, Config{CallServers: kamailioServer(k)}, a, func(s *Server) {
		s.flows = &flowCodec{key: flowKey}
		s.deps.OnRegistration = func(key string) { mu.Lock(); announcedB = append(announcedB, key); mu.Unlock() }
	})
	var in RegistrationState
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatal(err)
	}
	if err := b.s.ImportRegistration(in); err != nil {
		t.Fatal(err)
	}
	if regs := b.s.Registrations(); len(regs) != 1 || regs[0].FlowToken != st.Info.FlowToken {
		t.Fatalf("B's registrations: %+v", regs)
	}
	mu.Lock()
	if len(b.s.RegistrationKeys()) != 0 || len(announcedB) != 0 {
		t.Fatalf("an imported binding is replicated again: %q", announcedB)
	}
	mu.Unlock()

	dir := sippDir(t)
	carol := startSipp(t, dir, "-sn", "uas", "-i", outsideIP, "-p", port, "-mp", freePort(t), "-rtp_echo", "-m", "1")
	caller := startSipp(t, dir, "-sn", "uac_pcap", "-s", "carol", "-i", insideIP, "-p", freePort(t), "-mp", freePort(t),
		"-m", "1", "-d", "1000", k.addr.String())
	caller.wait(t, "inside uac")
	carol.wait(t, "outside uas")
	calls := b.hist.waitCalls(t, 1)
	if c := calls[0]; c.CallType != CallInbound || c.Status != 200 || !strings.Contains(c.To, "carol") {
		t.Fatalf("call through B: %+v", c)
	}

	if code := registerFrom(t, b.extUDP.String(), "carol", outsideIP+":"+port, 3600); code != 200 {
		t.Fatalf("REGISTER through B answered %d", code)
	}
	_, events := b.hist.snapshot()
	if !hasKind(events, "carol", "refreshed") || hasKind(events, "carol", "registered") {
		t.Fatalf("B's registration events: %+v", events)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(b.s.RegistrationKeys()) != 1 || len(announcedB) == 0 {
		t.Fatalf("a binding refreshed through B is not B's own (announced %q)", announcedB)
	}
}

func TestImportRegistrationRefuses(t *testing.T) {
	s, err := New(Config{Domain: "portico.test", Listeners: []Listener{{Interface: External, Transport: "udp", Address: extIP + ":0"}, {Interface: Internal, Transport: "udp", Address: intIP + ":0"}}, CallServers: []CallServer{{Address: "127.0.0.9:5060"}}}, Deps{Media: nopMedia{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, st := range []RegistrationState{
		{Info: RegistrationInfo{AOR: "sip:dave@portico.test", Contact: "sip:dave@192.0.2.1"}, Flow: Flow{Transport: "tcp"}, Contact: "<sip:dave@192.0.2.1>"},
		{Info: RegistrationInfo{Contact: "sip:dave@192.0.2.1"}, Flow: Flow{Transport: "udp"}, Contact: "<sip:dave@192.0.2.1>"},
	} {
		if err := s.ImportRegistration(st); err == nil {
			t.Errorf("imported %+v", st)
		}
	}
}
