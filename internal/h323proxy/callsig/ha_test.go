package callsig

import (
	"context"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/store"
)

// TestCallReplicatedWhenAnsweredAndEnded: an answered call is announced
// (Deps.OnCall) and exported with its parties and both legs' addresses;
// its end is announced again and it is no longer exported.
func TestCallReplicatedWhenAnsweredAndEnded(t *testing.T) {
	announced := make(chan string, 10)
	p := startPortico(t, Config{}, func(d *Deps) { d.OnCall = func(id string) { announced <- id } })
	calleeLn := routeTo(t, p)
	id := newCallID()
	caller, callee := placeCall(t, p.outAddr, calleeLn, id)
	if keys := p.srv.CallKeys(); len(keys) != 0 {
		t.Errorf("a call not answered yet is replicated: %v", keys)
	}
	callee.send(q931.Connect, true, answerUI(h225.H323UUPDUH323MessageBody_Connect, id, netip.AddrPort{}, nil))
	caller.expect(q931.Connect)
	next := func() string {
		t.Helper()
		select {
		case got := <-announced:
			return got
		case <-time.After(10 * time.Second):
			t.Fatal("the call was not announced")
		}
		return ""
	}
	key := next()
	if want := hex.EncodeToString(id); key != want {
		t.Fatalf("announced %q, want %q", key, want)
	}
	if keys := p.srv.CallKeys(); !slices.Equal(keys, []string{key}) {
		t.Errorf("CallKeys %v", keys)
	}
	st, ok := p.srv.ExportCall(key)
	if !ok {
		t.Fatal("the answered call is not exported")
	}
	if st.ID != key || st.From == "" || st.To != "1000" || st.Type != "guest" || st.Answered.IsZero() || st.Started.After(st.Answered) ||
		st.Legs[Outside].Local != p.outAddr || st.Legs[Outside].Remote.Addr() != outsideEP ||
		st.Legs[Inside].Remote != lnAddr(calleeLn) || st.Legs[Inside].Local.Addr() != porticoIn {
		t.Errorf("exported %+v", st)
	}
	caller.send(q931.ReleaseComplete, false, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, id, netip.AddrPort{}, nil), withCause(CauseNormal))
	callee.expect(q931.ReleaseComplete)
	p.hist.next(t)
	if got := next(); got != key {
		t.Errorf("end announced as %q", got)
	}
	if _, ok := p.srv.ExportCall(key); ok {
		t.Error("an ended call is still exported")
	}
}

// fakeRelay is the relay as the watcher of the peer's calls sees it: the
// live sessions (adopted copies among them) and the standby copies.
type fakeRelay struct {
	mu            sync.Mutex
	live, standby []media.SessionStats
}

func (f *fakeRelay) Allocate(media.SessionConfig) (media.SessionID, []media.StreamInfo, error) {
	return 0, nil, errors.New("fake relay")
}
func (f *fakeRelay) Update(media.SessionID, []media.StreamConfig) ([]media.StreamInfo, error) {
	return nil, errors.New("fake relay")
}
func (f *fakeRelay) Release(media.SessionID) (media.SessionStats, error) {
	return media.SessionStats{}, nil
}
func (f *fakeRelay) PeerSession(label string) (media.SessionStats, bool, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range f.live {
		if st.Label == label {
			return st, true, false
		}
	}
	for _, st := range f.standby {
		if st.Label == label {
			return media.SessionStats{}, false, true
		}
	}
	return media.SessionStats{}, false, false
}

// LocalAddrs is not used: the test passes the addresses to checkPeerCalls.
func (f *fakeRelay) LocalAddrs() (map[netip.Addr]bool, error) { return nil, errors.New("fake relay") }

var _ relayView = (*fakeRelay)(nil)

func (f *fakeRelay) set(live, standby []media.SessionStats) {
	f.mu.Lock()
	f.live, f.standby = live, standby
	f.mu.Unlock()
}

// TestPeerCallHistory walks the HA peer's calls through what the survivor
// sees after a failover and checks that each writes exactly one history
// row, and only once its addresses are here: a call whose media the relay
// adopted ends when that media stops (the row's end is the last packet,
// with the survivor's media counts); one whose media never reached this
// node ends when its copy is released, at the moment its address arrived;
// one the peer ended, or lost without a failover, writes none.
func TestPeerCallHistory(t *testing.T) {
	vip := netip.MustParseAddr("192.0.2.100")
	answered := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	state := func(id string) CallState {
		return CallState{ID: id, Type: "registered", From: "room-7", To: "2001", Source: "198.51.100.7:40000",
			Started: answered.Add(-2 * time.Second), Answered: answered,
			Legs: [2]StateLeg{{Remote: netip.MustParseAddrPort("198.51.100.7:40000"), Local: netip.AddrPortFrom(vip, 1720)},
				{Remote: netip.MustParseAddrPort("10.0.0.5:1720"), Local: netip.MustParseAddrPort("10.0.0.11:41000")}}}
	}
	session := func(label string, last time.Time, in, out uint64) media.SessionStats {
		return media.SessionStats{Label: label, Streams: []media.StreamStats{{Kind: media.KindAudio,
			Legs: [2]media.LegStats{{Packets: in, LastPacket: last}, {Packets: out, LastPacket: last.Add(-time.Millisecond)}}}}}
	}
	relay := &fakeRelay{}
	rows := make(chan store.CallRecord, 10)
	s, err := New(Config{Sides: [2]SideConfig{{Bind: porticoOut, Interface: "external"}, {Bind: porticoIn, Interface: "internal"}}},
		Deps{Media: relay, History: func(r store.CallRecord) { rows <- r },
			Route: func(context.Context, *h225.SetupUUIE, CallInfo) (netip.AddrPort, error) {
				return netip.AddrPort{}, ErrNoRoute
			}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.watching = true // the test drives checkPeerCalls itself

	for _, id := range []string{"adopted", "stranded", "ended-there", "lost"} {
		if err := s.ImportCall(state(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ImportCall(CallState{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("a state without an ID: %v", err)
	}
	notHere := func() (map[netip.Addr]bool, error) { return map[netip.Addr]bool{}, nil }
	here := func() (map[netip.Addr]bool, error) { return map[netip.Addr]bool{vip: true}, nil }
	none := func(what string) {
		t.Helper()
		select {
		case r := <-rows:
			t.Fatalf("%s: history row %+v", what, r)
		case <-time.After(100 * time.Millisecond):
		}
	}
	row := func() store.CallRecord {
		t.Helper()
		select {
		case r := <-rows:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no history row")
		}
		return store.CallRecord{}
	}

	// The peer holds the calls: their copies wait, nothing is written.
	t0 := time.Now()
	relay.set(nil, []media.SessionStats{{Label: "adopted"}, {Label: "stranded"}, {Label: "ended-there"}, {Label: "lost"}})
	s.checkPeerCalls(t0, notHere)
	none("peer alive")
	// The peer ends one call (its row is the peer's) and restarts without
	// another it lost where nothing relayed it.
	s.ForgetCall("ended-there")
	s.LoseCall("lost")
	relay.set(nil, []media.SessionStats{{Label: "adopted"}, {Label: "stranded"}})
	s.checkPeerCalls(t0, notHere)
	none("peer ended or lost calls")
	if n := s.PeerCalls(); n != 2 {
		t.Fatalf("%d peer calls kept, want 2", n)
	}

	// The VIP arrives: media reaches one call's copy, which the relay
	// adopts; the other's copy waits.
	t1 := t0.Add(time.Second)
	last := t1.Add(300 * time.Millisecond)
	relay.set([]media.SessionStats{session("adopted", last, 50, 48)}, []media.SessionStats{{Label: "stranded"}})
	s.checkPeerCalls(t1, here)
	none("calls in progress after the failover")
	// A restart of the peer now does not drop them: they are this node's.
	s.LoseCall("adopted")
	s.LoseCall("stranded")

	// The stranded copy is released without media; the adopted media stops.
	relay.set(nil, nil)
	s.checkPeerCalls(t1.Add(time.Minute), here)
	got := map[string]store.CallRecord{}
	for range 2 {
		r := row()
		got[r.ID] = r
	}
	none("after both rows")
	for id, end := range map[string]time.Time{"adopted": last, "stranded": t1} {
		r, ok := got[id]
		if !ok {
			t.Errorf("no row for %s: %+v", id, got)
			continue
		}
		if r.Protocol != "h323" || r.EndedBy != "portico" || r.Disposition != DispositionFailover || r.Status != CauseTemporary ||
			r.From != "room-7" || r.To != "2001" || r.CallType != "registered" || !r.AnsweredAt.Equal(answered) ||
			!r.EndedAt.Equal(end) || r.DurationMs != end.Sub(answered).Milliseconds() {
			t.Errorf("%s: row %+v, want ended at %v", id, r, end)
		}
	}
	if st := got["adopted"].Streams; len(st) != 1 || st[0].PacketsIn != 50 || st[0].PacketsOut != 48 {
		t.Errorf("adopted call's media counts %+v", st)
	}
	if n := s.PeerCalls(); n != 0 {
		t.Errorf("%d peer calls left after their rows", n)
	}
	s.checkPeerCalls(t1.Add(2*time.Minute), here)
	none("a second check")
}
