package media

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

// A session exported by one relay and imported by another after the first
// closed keeps its ports and latched peers: media sent to the old
// addresses is forwarded at once, and a stranger is still refused.
func TestExportImport(t *testing.T) {
	var mu sync.Mutex
	changes := map[SessionID]int{}
	a, _ := startRelay(t, testConfig(47000, 47100, 20), Deps{OnChange: func(id SessionID) { mu.Lock(); changes[id]++; mu.Unlock() }})
	b, _ := startRelay(t, testConfig(47000, 47100, 20), Deps{OnChange: func(SessionID) { t.Error("a standby copy reported a change") }})
	caller, callee, stranger := udp(t), udp(t), udp(t)
	id, infos, err := a.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{
		{Kind: KindAudio, Remote: [2]netip.AddrPort{addr(caller), addr(callee)}},
		{Kind: KindBFCP, Transport: TCP, Role: [2]TCPRole{TCPPassive, TCPPassive}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	caller.WriteToUDPAddrPort(rtpPacket(7, 1, 60), infos[0].Local[0])
	expectNext(t, callee, rtpPacket(7, 1, 60))
	callee.WriteToUDPAddrPort(rtpPacket(9, 1, 60), infos[0].Local[1])
	expectNext(t, caller, rtpPacket(9, 1, 60))
	mu.Lock()
	n := changes[id]
	mu.Unlock()
	if n < 3 { // allocated, and each leg latched
		t.Fatalf("%d changes reported for %v, want at least 3", n, id)
	}

	st, ok := a.Export(id)
	if !ok || len(st.Streams) != 2 || st.Streams[0].Peer[0] != addr(caller) || st.Streams[0].Peer[1] != addr(callee) {
		t.Fatalf("export: %+v %v", st, ok)
	}
	if ids := a.SessionIDs(); len(ids) != 1 || ids[0] != id {
		t.Fatalf("session IDs %v", ids)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	free, _ := b.Available("external")
	if err := b.Import(st); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Available("external"); got != free-1 {
		t.Fatalf("free external pairs %d after import, want %d (the imported port reserved)", got, free-1)
	}
	if err := b.Import(st); err != nil { // an update with the same sockets
		t.Fatalf("second import: %v", err)
	}
	if len(b.Sessions()) != 0 || len(b.Standby()) != 1 {
		t.Fatalf("sessions %d, standby %d", len(b.Sessions()), len(b.Standby()))
	}

	// The stranger, sending first, is dropped: the callee's leg is latched.
	stranger.WriteToUDPAddrPort(rtpPacket(5, 1, 60), infos[0].Local[1])
	callee.WriteToUDPAddrPort(rtpPacket(9, 2, 60), infos[0].Local[1])
	expectNext(t, caller, rtpPacket(9, 2, 60))
	caller.WriteToUDPAddrPort(rtpPacket(7, 2, 60), infos[0].Local[0])
	expectNext(t, callee, rtpPacket(7, 2, 60))
	sb := b.Standby()[0]
	if sb.Streams[1].Disabled != true || sb.Streams[0].Legs[1].Dropped != 1 {
		t.Fatalf("standby stats: %+v", sb.Streams)
	}

	b.Forget(id) // carried media here: kept (TestAdoptedCopy)
	if len(b.Standby())+len(b.SessionIDs()) != 1 {
		t.Fatal("a copy that carried media was forgotten")
	}
}

// An import onto an address the node does not have binds with
// IP_FREEBIND and takes no port from the node's own pool.
func TestImportForeignAddress(t *testing.T) {
	b, _ := startRelay(t, testConfig(47200, 47300, 20), Deps{})
	vip := netip.MustParseAddr("192.0.2.200") // not configured on this host
	st := SessionState{ID: 5, Interfaces: [2]string{"external", "internal"}, Streams: []StreamState{{
		Config: StreamConfig{Kind: KindAudio},
		Local:  [2]netip.AddrPort{netip.AddrPortFrom(vip, 47202), netip.AddrPortFrom(vip, 47302)},
	}}}
	free, _ := b.Available("external")
	if err := b.Import(st); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Available("external"); got != free {
		t.Fatalf("free pairs %d, want %d", got, free)
	}
	if s := b.Standby(); len(s) != 1 || s[0].Streams[0].Local[0].Port() != 47202 {
		t.Fatalf("standby %+v", s)
	}
	st.Interfaces[0] = "nowhere"
	st.ID = 6
	if err := b.Import(st); err == nil {
		t.Fatal("import onto an unknown interface accepted")
	}
}

// A copy that carried media belongs to this node now: the peer's removal
// (a restarted peer's snapshot without it) keeps it, it becomes a session
// of this node under a new ID (replicated as this node's), and it ends
// when its media stops.
func TestAdoptedCopy(t *testing.T) {
	cfg := testConfig(47400, 47500, 20)
	cfg.InactivityTimeout = 300 * time.Millisecond
	var mu sync.Mutex
	var changed []SessionID
	b, _ := startRelay(t, cfg, Deps{
		OnTimeout: func(to Timeout) { t.Errorf("OnTimeout for an adopted copy: %+v", to) },
		OnChange:  func(id SessionID) { mu.Lock(); changed = append(changed, id); mu.Unlock() },
	})
	caller, callee := udp(t), udp(t)
	local := [2]netip.AddrPort{netip.AddrPortFrom(lo, 47402), netip.AddrPortFrom(lo, 47502)}
	st := SessionState{ID: 9, Label: "call-9", Interfaces: [2]string{"external", "internal"}, Streams: []StreamState{{
		Config: StreamConfig{Kind: KindAudio, Remote: [2]netip.AddrPort{addr(caller), addr(callee)}},
		Local:  local, Peer: [2]netip.AddrPort{addr(caller), addr(callee)},
	}}}
	idle := st
	idle.ID = 10
	idle.Streams = []StreamState{st.Streams[0]}
	idle.Streams[0].Local = [2]netip.AddrPort{netip.AddrPortFrom(lo, 47404), netip.AddrPortFrom(lo, 47504)}
	for _, s := range []SessionState{st, idle} {
		if err := b.Import(s); err != nil {
			t.Fatal(err)
		}
	}
	if _, live, copy := b.PeerSession("call-9"); live || !copy {
		t.Fatalf("PeerSession of the imported copies: live %v, standby %v", live, copy)
	}
	if _, live, copy := b.PeerSession("call-8"); live || copy {
		t.Fatalf("PeerSession of a label never imported: live %v, standby %v", live, copy)
	}
	free, _ := b.Available("external")
	caller.WriteToUDPAddrPort(rtpPacket(7, 1, 60), local[0])
	expectNext(t, callee, rtpPacket(7, 1, 60))
	b.Forget(9) // the peer's removal: kept, the copy carried media
	b.Forget(10)
	b.Forget(10) // twice is fine
	// Sockets close in their worker's next round: the port comes back then.
	waitFor(t, func() bool { got, _ := b.Available("external"); return got == free+1 })

	waitFor(t, func() bool { return len(b.SessionIDs()) == 1 })
	if len(b.Standby()) != 0 {
		t.Fatalf("standby %+v", b.Standby())
	}
	id := b.SessionIDs()[0]
	out, ok := b.Export(id)
	if !ok || id == 9 || out.Label != "call-9" || out.Streams[0].Local != local || out.Streams[0].Peer[0] != addr(caller) {
		t.Fatalf("adopted session %v exported as %+v %v", id, out, ok)
	}
	if ps, live, copy := b.PeerSession("call-9"); !live || copy || ps.ID != id || ps.Streams[0].Legs[0].Packets == 0 {
		t.Fatalf("PeerSession of the adopted copy: %+v live %v, standby %v", ps, live, copy)
	}
	// The adoption is announced after the session is listed: wait for
	// it, and never hold mu while failing (the relay's OnChange takes it).
	announced := func() []SessionID {
		mu.Lock()
		defer mu.Unlock()
		return append([]SessionID(nil), changed...)
	}
	waitFor(t, func() bool { return len(announced()) > 0 })
	if c := announced(); c[0] != id {
		t.Fatalf("changes %v, want %v announced", c, id)
	}

	waitFor(t, func() bool { return len(b.SessionIDs()) == 0 })
	if _, live, copy := b.PeerSession("call-9"); live || copy {
		t.Fatalf("PeerSession after the adopted session ended: live %v, standby %v", live, copy)
	}
	waitFor(t, func() bool { got, _ := b.Available("external"); return got == free+2 })
	waitFor(t, func() bool { c := announced(); return len(c) > 1 && c[len(c)-1] == id })
	b.mu.Lock()
	n := len(b.copies)
	b.mu.Unlock()
	if n != 0 {
		t.Errorf("label index holds %d labels after every copy ended", n)
	}
}

// TestLocalAddrsShared: the callers of a second share one read of the
// interface addresses, lock-free once it is read; the next second reads
// again, so an address that arrived is seen.
func TestLocalAddrsShared(t *testing.T) {
	var mu sync.Mutex
	reads := 0
	clock := time.Unix(1000, 0)
	vip := netip.MustParseAddr("192.0.2.10")
	c := &addrCache{
		now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
		read: func() (map[netip.Addr]bool, error) {
			mu.Lock()
			defer mu.Unlock()
			reads++
			return map[netip.Addr]bool{lo: true, vip: reads > 1}, nil
		},
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if a, err := c.get(); err != nil || !a[lo] || a[vip] {
				t.Errorf("first second: %v %v", a, err)
			}
		})
	}
	wg.Wait()
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	advance(999 * time.Millisecond)
	if a, _ := c.get(); a[vip] {
		t.Error("the address arrived within the second of the first read")
	}
	mu.Lock()
	if reads != 1 {
		t.Errorf("%d reads within a second, want 1", reads)
	}
	mu.Unlock()
	advance(time.Millisecond)
	if a, _ := c.get(); !a[vip] {
		t.Error("the address that arrived is not seen a second later")
	}
	mu.Lock()
	if reads != 2 {
		t.Errorf("%d reads, want 2", reads)
	}
	mu.Unlock()

	// A relay's own snapshot holds this host's loopback address.
	b, _ := startRelay(t, testConfig(47800, 47900, 20), Deps{})
	if a, err := b.LocalAddrs(); err != nil || !a[lo] {
		t.Fatalf("relay LocalAddrs %v %v, want %v among them", a, err, lo)
	}
}

// BenchmarkLocalAddrs measures a caller of the relay's shared snapshot
// (the stranded-copy check, the H.323 watcher of the peer's calls); the
// system read it replaces, once a second, is BenchmarkLocalAddrsRead.
func BenchmarkLocalAddrs(b *testing.B) {
	r, _ := startRelay(b, testConfig(47800, 47900, 20), Deps{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.LocalAddrs(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLocalAddrsRead(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LocalAddrs(); err != nil {
			b.Fatal(err)
		}
	}
}

// A standby copy whose addresses are on this node (the peer failed and
// its addresses moved here) and that no media reached within the
// inactivity timeout is released with its ports (a call that was still
// ringing on the failed peer); one whose addresses are elsewhere (the
// peer is alive) is kept.
func TestStrandedCopyReleased(t *testing.T) {
	cfg := testConfig(47600, 47700, 20)
	cfg.InactivityTimeout = 300 * time.Millisecond
	b, _ := startRelay(t, cfg, Deps{})
	here := SessionState{ID: 11, Label: "ringing", Interfaces: [2]string{"external", "internal"}, Streams: []StreamState{{
		Config: StreamConfig{Kind: KindAudio},
		Local:  [2]netip.AddrPort{netip.AddrPortFrom(lo, 47602), netip.AddrPortFrom(lo, 47702)},
	}}}
	vip := netip.MustParseAddr("192.0.2.201") // not on this host: the peer holds it
	away := SessionState{ID: 12, Label: "peer's", Interfaces: [2]string{"external", "internal"}, Streams: []StreamState{{
		Config: StreamConfig{Kind: KindAudio},
		Local:  [2]netip.AddrPort{netip.AddrPortFrom(vip, 47604), netip.AddrPortFrom(vip, 47704)},
	}}}
	free, _ := b.Available("external")
	for _, st := range []SessionState{here, away} {
		if err := b.Import(st); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(b.Standby()) != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sb := b.Standby()
	if len(sb) != 1 || sb[0].Label != "peer's" {
		t.Fatalf("standby copies %+v, want only the one whose addresses are elsewhere", sb)
	}
	// The copy leaves the standby list before its ports are released.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got, _ := b.Available("external"); got == free {
			break
		}
	}
	if got, _ := b.Available("external"); got != free {
		t.Errorf("free external pairs %d, want %d (the stranded copy's port back)", got, free)
	}
	if n := len(b.SessionIDs()); n != 0 {
		t.Errorf("%d sessions: a stranded copy was adopted", n)
	}
}
