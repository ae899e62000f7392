package sipedge

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/media"
)

// TestCallSurvivesFailover: an outside sipp registers through node A to
// Kamailio and calls an inside sipp UAS. Once the call is answered, A's
// call is exported and imported by node B (what the HA sync link carries,
// package hasync) as a dormant call. A dies (its SIP sockets close: no
// BYE, no history row) and B takes A's addresses. The caller's BYE then
// reaches B, which takes the call over, answers it and relays it to the
// callee through Kamailio; the callee's scenario ends only when that BYE
// arrives. The one history row is B's. A's relay session goes to B's
// relay as a standby copy on the same addresses and ports (package hasync
// carries it); A's relay closes with A, B's copy forwards the media on,
// and the call B took over releases it and records its counts.
func TestCallSurvivesFailover(t *testing.T) { failoverCall(t, false) }

// TestReinviteAfterFailover is TestCallSurvivesFailover with a re-INVITE
// from the caller after the failover: B relays it to the callee and
// answers it with the relay addresses and ports A had given the caller,
// the media staying where it was anchored.
func TestReinviteAfterFailover(t *testing.T) { failoverCall(t, true) }

func failoverCall(t *testing.T, reinvite bool) {
	dir := sippDir(t)
	insidePort := freePort(t)
	calleeArgs := []string{"-sn", "uas"}
	callerScenario := "reg_call.xml"
	if reinvite {
		calleeArgs = []string{"-sf", "uas_reinvite.xml"}
		callerScenario = "reg_reinvite_call.xml"
	}
	callee := startSipp(t, dir, append(calleeArgs, "-i", insideIP, "-p", insidePort, "-mp", freePort(t), "-rtp_echo", "-m", "1")...)
	// Kamailio record-routes: in-dialog requests and their responses
	// cross it (the sipp UAS answers wherever the INVITE came from).
	k := startKamailio(t, 64, `MCU_URI="sip:`+insideIP+":"+insidePort+`"`, "WITH_RR")
	var mu sync.Mutex
	var announcedA, announcedB []string
	a := startPortico(t, Config{CallServers: kamailioServer(k)}, func(s *Server) {
		s.deps.OnCall = func(id string) { mu.Lock(); announcedA = append(announcedA, id); mu.Unlock() }
	})
	// The caller hangs up after 5 s, by which time B holds A's addresses;
	// were it later, sipp retransmits the BYE.
	callerMedia := freePort(t)
	caller := startSipp(t, dir, "-sf", callerScenario, "-key", "user", "alice", "-s", "1001",
		"-i", outsideIP, "-p", freePort(t), "-mp", callerMedia, "-m", "1", "-d", "5000", a.extUDP.String())

	var id string
	for i := 0; id == ""; i++ {
		if keys := a.s.CallKeys(); len(keys) == 1 {
			id = keys[0]
		} else if i == 200 {
			t.Fatalf("no answered call on A: %+v", a.s.Calls())
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	if !slices.Contains(announcedA, id) {
		t.Errorf("answered call %s not announced: %q", id, announcedA)
	}
	mu.Unlock()
	st, ok := a.s.ExportCall(id)
	if !ok || st.Legs[0].Side != External || st.Legs[1].Side != Internal || st.Legs[0].RemoteTag == "" || st.Legs[1].RemoteTag == "" || st.MediaID == 0 {
		t.Fatalf("export: %+v %v", st, ok)
	}
	body, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	ms, ok := a.relay.Export(st.MediaID)
	if !ok {
		t.Fatalf("no relay session %v on A", st.MediaID)
	}
	a.crash()
	a.relay.Close()

	b := startPorticoAt(t, Config{CallServers: kamailioServer(k)}, a, func(s *Server) {
		s.deps.OnCall = func(id string) { mu.Lock(); announcedB = append(announcedB, id); mu.Unlock() }
	})
	if err := b.relay.Import(ms); err != nil {
		t.Fatal(err)
	}
	var in CallState
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatal(err)
	}
	if err := b.s.ImportCall(in); err != nil {
		t.Fatal(err)
	}
	if b.s.DormantCalls() != 1 || len(b.s.Calls()) != 0 || len(b.s.CallKeys()) != 0 {
		t.Fatalf("a dormant call is listed as B's: dormant %d, calls %+v", b.s.DormantCalls(), b.s.Calls())
	}

	caller.wait(t, "outside caller")
	callee.wait(t, "inside callee")
	calls := b.hist.waitCalls(t, 1)
	c := calls[0]
	if c.ID != id || c.CallType != CallRegistered || c.EndedBy != endedByCaller || c.Status != 200 || c.AnsweredAt.IsZero() || !c.StartedAt.Equal(st.Started) {
		t.Fatalf("B's history row: %+v", c)
	}
	// B's relay adopted its copy of A's session only once media reached
	// it; the call then owns it, and its row counts what B relayed.
	if len(c.Streams) != 1 || c.Streams[0].PacketsIn == 0 || c.Streams[0].PacketsOut == 0 {
		t.Fatalf("B relayed no media for the call: %+v", c.Streams)
	}
	t.Logf("B relayed %d packets from the caller, %d back", c.Streams[0].PacketsIn, c.Streams[0].PacketsOut)
	if n := len(b.relay.Sessions()) + len(b.relay.Standby()); n != 0 {
		t.Fatalf("B's relay holds %d sessions after the call", n)
	}
	if reinvite {
		// The caller's messages: its own offers name callerMedia; every
		// answer (A's to the INVITE, B's to the re-INVITE) one relay port.
		logs, _ := filepath.Glob(filepath.Join(dir, "reg_reinvite_call_*_messages.log"))
		if len(logs) != 1 {
			t.Fatalf("caller's message logs: %q", logs)
		}
		msgs, err := os.ReadFile(logs[0])
		if err != nil {
			t.Fatal(err)
		}
		var answers []string
		for _, m := range regexp.MustCompile(`m=audio (\d+)`).FindAllStringSubmatch(string(msgs), -1) {
			if m[1] != callerMedia {
				answers = append(answers, m[1])
			}
		}
		if len(answers) < 2 || slices.ContainsFunc(answers, func(p string) bool { return p != answers[0] }) {
			t.Fatalf("relay ports answered to the caller: %q", answers)
		}
	}
	if n := a.hist.count(); n != 0 {
		t.Fatalf("A wrote %d history rows", n)
	}
	if b.s.DormantCalls() != 0 || len(b.s.Calls()) != 0 {
		t.Fatalf("after BYE: dormant %d, calls %+v", b.s.DormantCalls(), b.s.Calls())
	}
	mu.Lock()
	defer mu.Unlock()
	// Taken over (the peer learns B holds it), then ended (the peer forgets it).
	if len(announcedB) < 2 || announcedB[0] != id || announcedB[len(announcedB)-1] != id {
		t.Fatalf("B announced %q", announcedB)
	}
	if _, ok := b.s.ExportCall(id); ok {
		t.Fatal("an ended call is still exported")
	}
}

// TestImportCall: a dormant call the peer ends is forgotten; states that
// name no dialog, an unknown side or a malformed URI are refused.
func TestImportCall(t *testing.T) {
	s, err := New(Config{Domain: "portico.test", Listeners: []Listener{{Interface: External, Transport: "udp", Address: extIP + ":0"}, {Interface: Internal, Transport: "udp", Address: intIP + ":0"}}, CallServers: []CallServer{{Address: "127.0.0.9:5060"}}}, Deps{Media: &releases{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hist := &memHistory{}
	s.deps.History = hist
	defer func() {
		if n := hist.count(); n != 0 {
			t.Errorf("%d history rows written", n)
		}
	}()
	good := CallState{ID: "c1", Legs: [2]LegState{
		{Side: External, CallID: "x1", LocalTag: "l1", RemoteTag: "r1", Local: "sip:1001@portico.test", Remote: "sip:alice@portico.test", Target: "sip:alice@192.0.2.1:5060"},
		{Side: Internal, CallID: "x2", LocalTag: "l2", RemoteTag: "r2", Local: "sip:alice@portico.test", Remote: "sip:1001@portico.test", Target: "sip:1001@10.0.0.1", Routes: []string{"sip:10.0.0.2;lr"}},
	}}
	if err := s.ImportCall(good); err != nil {
		t.Fatal(err)
	}
	if s.DormantCalls() != 1 {
		t.Fatalf("dormant %d", s.DormantCalls())
	}
	// A request takes the call over; the peer's record of it afterwards
	// (the peer took it back) hands it over again without a history row.
	st := s.dormant.take(External, dialogRequest("x1", "l1"))
	var c *call
	if st != nil {
		c = s.resumeCall(st)
	}
	if c == nil || len(s.Calls()) != 1 || s.DormantCalls() != 0 || len(s.CallKeys()) != 1 {
		t.Fatalf("take-over: calls %+v, dormant %d", s.Calls(), s.DormantCalls())
	}
	c.mu.Lock()
	c.mediaID, c.hasMedia = 42, true // as if an offer had allocated it
	c.mu.Unlock()
	if exp, ok := s.ExportCall("c1"); !ok || exp.Legs[0].CSeq != good.Legs[0].CSeq+cseqGap {
		t.Fatalf("export after take-over: %+v %v", exp, ok)
	}
	if err := s.ImportCall(good); err != nil {
		t.Fatal(err)
	}
	if len(s.Calls()) != 0 || s.DormantCalls() != 1 {
		t.Fatalf("hand-back: calls %+v, dormant %d", s.Calls(), s.DormantCalls())
	}
	rel := s.deps.Media.(*releases)
	if len(rel.ids) != 0 {
		t.Fatalf("media released when handing the call back: %v", rel.ids)
	}
	s.ForgetCall("c1")
	if s.DormantCalls() != 0 {
		t.Fatalf("dormant %d after the peer ended the call", s.DormantCalls())
	}
	if !slices.Equal(rel.ids, []media.SessionID{42}) {
		t.Fatalf("released %v once the peer ended the call", rel.ids)
	}
	for _, tc := range []struct {
		name string
		edit func(*CallState)
	}{
		{"no id", func(c *CallState) { c.ID = "" }},
		{"unknown side", func(c *CallState) { c.Legs[1].Side = "dmz" }},
		{"no remote tag", func(c *CallState) { c.Legs[0].RemoteTag = "" }},
		{"bad route", func(c *CallState) { c.Legs[1].Routes = []string{"sip:"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := good
			st.Legs[1].Routes = slices.Clone(good.Legs[1].Routes)
			tc.edit(&st)
			if err := s.ImportCall(st); err == nil {
				t.Errorf("imported %+v", st)
			}
		})
	}
	if s.DormantCalls() != 0 {
		t.Fatalf("a refused call is held")
	}
}

// FuzzImportCall: any record body from the HA peer is refused or held as
// a dormant call, and a held call can be taken over and ended, without a
// panic.
func FuzzImportCall(f *testing.F) {
	good := `{"ID":"c1","Type":"guest","MediaID":7,"Legs":[` +
		`{"Side":"external","CallID":"x1","LocalTag":"l1","RemoteTag":"r1","Local":"sip:1001@portico.test","Remote":"sip:alice@portico.test","Target":"sip:alice@192.0.2.1:5060","CSeq":4,"Fixed":"192.0.2.1:5060"},` +
		`{"Side":"internal","CallID":"x2","LocalTag":"l2","RemoteTag":"r2","Local":"sip:alice@portico.test","Remote":"sip:1001@portico.test","Target":"sip:1001@10.0.0.1","Routes":["sip:10.0.0.2;lr"],"Transport":"udp"}]}`
	f.Add([]byte(good))
	f.Add([]byte(`{"ID":"c2","Legs":[{},{}]}`))
	f.Add([]byte(`{"ID":"c3","Streams":[{"Kind":"audio"}],"Legs":null}`))
	s, err := New(Config{Domain: "portico.test", Listeners: []Listener{{Interface: External, Transport: "udp", Address: extIP + ":0"}, {Interface: Internal, Transport: "udp", Address: intIP + ":0"}}, CallServers: []CallServer{{Address: "127.0.0.9:5060"}}}, Deps{Media: nopMedia{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, body []byte) {
		var st CallState
		if json.Unmarshal(body, &st) != nil {
			return
		}
		if s.ImportCall(st) != nil {
			return
		}
		s.dormant.mu.Lock()
		held := s.dormant.byID[st.ID]
		s.dormant.delLocked(st.ID)
		s.dormant.mu.Unlock()
		if held == nil {
			t.Fatalf("accepted call %q not held", st.ID)
		}
		if c := s.resumeCall(held); c != nil {
			c.finish(endedByPortico, 200, "fuzz", nil)
		}
	})
}

// dialogRequest is a BYE within the dialog Call-ID callID whose To tag is
// Portico's tag.
func dialogRequest(callID, tag string) *sip.Request {
	req := sip.NewRequest(sip.BYE, sip.Uri{Scheme: "sip", Host: "portico.test"})
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", Host: "portico.test"}, Params: sip.NewParams()}
	to.Params.Add("tag", tag)
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	return req
}

// releases is nopMedia recording what is released.
type releases struct {
	nopMedia
	ids []media.SessionID
}

func (r *releases) Release(id media.SessionID) (media.SessionStats, error) {
	r.ids = append(r.ids, id)
	return media.SessionStats{}, nil
}

// TestLoseCallMediaHere: the peer restarted (its snapshot no longer
// holds the call) while this node's relay carries the call's media (its
// copy of the peer's session was adopted). The call is taken over, not
// dropped: listed, announced and exported, so it moves back with the
// addresses; the peer's record of it afterwards hands it back without a
// history row, and the peer's end of it releases the session.
func TestLoseCallMediaHere(t *testing.T) {
	m := &adoptedMedia{label: "c1", id: 9}
	s, err := New(Config{Domain: "portico.test", Listeners: []Listener{{Interface: External, Transport: "udp", Address: extIP + ":0"}, {Interface: Internal, Transport: "udp", Address: intIP + ":0"}}, CallServers: []CallServer{{Address: "127.0.0.9:5060"}}}, Deps{Media: m})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hist := &memHistory{}
	s.deps.History = hist
	var announced []string
	s.deps.OnCall = func(id string) { announced = append(announced, id) }
	st := CallState{ID: "c1", MediaID: 7, Legs: [2]LegState{
		{Side: External, CallID: "x1", LocalTag: "l1", RemoteTag: "r1", Local: "sip:1001@portico.test", Remote: "sip:alice@portico.test", Target: "sip:alice@192.0.2.1:5060"},
		{Side: Internal, CallID: "x2", LocalTag: "l2", RemoteTag: "r2", Local: "sip:alice@portico.test", Remote: "sip:1001@portico.test", Target: "sip:1001@10.0.0.1"},
	}}
	if err := s.ImportCall(st); err != nil {
		t.Fatal(err)
	}
	s.LoseCall("c1")
	s.LoseCall("c1") // held here now: stays
	if len(s.Calls()) != 1 || s.DormantCalls() != 0 || !slices.Equal(announced, []string{"c1"}) {
		t.Fatalf("peer restarted: calls %+v, dormant %d, announced %q", s.Calls(), s.DormantCalls(), announced)
	}
	if exp, ok := s.ExportCall("c1"); !ok || exp.MediaID != 9 {
		t.Fatalf("export of the call taken over: %+v %v", exp, ok)
	}
	// The peer takes the addresses back and, with a request, the call.
	if err := s.ImportCall(st); err != nil {
		t.Fatal(err)
	}
	if len(s.Calls()) != 0 || s.DormantCalls() != 1 || len(m.ids) != 0 {
		t.Fatalf("hand-back: calls %+v, dormant %d, released %v", s.Calls(), s.DormantCalls(), m.ids)
	}
	s.ForgetCall("c1")
	if len(s.Calls()) != 0 || s.DormantCalls() != 0 || !slices.Equal(m.ids, []media.SessionID{9}) {
		t.Fatalf("the peer ended the call: calls %+v, dormant %d, released %v", s.Calls(), s.DormantCalls(), m.ids)
	}
	// The peer takes a call over and ends it before its record of the
	// call is sent: only the removal arrives, and the call held here is
	// handed over without a history row.
	m.ids = nil
	if err := s.ImportCall(st); err != nil {
		t.Fatal(err)
	}
	s.LoseCall("c1")
	if len(s.Calls()) != 1 {
		t.Fatalf("not taken over again: calls %+v", s.Calls())
	}
	s.ForgetCall("c1")
	if len(s.Calls()) != 0 || s.DormantCalls() != 0 || !slices.Equal(m.ids, []media.SessionID{9}) {
		t.Fatalf("the peer ended the call it took over: calls %+v, dormant %d, released %v", s.Calls(), s.DormantCalls(), m.ids)
	}
	if n := hist.count(); n != 0 {
		t.Errorf("%d history rows written", n)
	}
}

// adoptedMedia is releases whose relay holds one session of its own, an
// adopted copy labelled with a call's ID.
type adoptedMedia struct {
	releases
	label string
	id    media.SessionID
}

func (m *adoptedMedia) Sessions() []media.SessionStats {
	if slices.Contains(m.ids, m.id) {
		return nil
	}
	return []media.SessionStats{{ID: m.id, Label: m.label}}
}

func (m *adoptedMedia) Forget(media.SessionID) {}
