package media

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/media/rtp"
)

var lo = netip.MustParseAddr("127.0.0.1")

func testConfig(extMin, intMin, n int) Config {
	return Config{Interfaces: map[string]InterfaceConfig{
		"external": {Addr: lo, PortMin: extMin, PortMax: extMin + n - 1},
		"internal": {Addr: lo, PortMin: intMin, PortMax: intMin + n - 1},
	}}
}

func startRelay(t testing.TB, cfg Config, deps Deps) (*Relay, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	deps.Registerer = reg
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		r.Close() // twice is fine
	})
	return r, reg
}

func udp(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addr(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

func rtpPacket(ssrc uint32, seq uint16, size int) []byte {
	b := rtp.AppendHeader(nil, rtp.Header{PayloadType: 8, Sequence: seq, SSRC: ssrc})
	return append(b, make([]byte, size-len(b))...)
}

// recv reads one datagram or fails after a generous deadline.
func recv(t testing.TB, c *net.UDPConn) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("read on %v: %v", addr(c), err)
	}
	return buf[:n], from
}

// silent asserts nothing arrives within a short wait (used after a packet
// that must be dropped; a later packet that must arrive proves ordering).
func expectNext(t testing.TB, c *net.UDPConn, want []byte) {
	t.Helper()
	got, _ := recv(t, c)
	if string(got) != string(want) {
		t.Fatalf("received %d bytes %x..., want %x...", len(got), got[:min(len(got), 12)], want[:min(len(want), 12)])
	}
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached")
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no interfaces", Config{}, "media.interfaces: at least one interface is required"},
		{"port not a port", Config{Interfaces: map[string]InterfaceConfig{"external": {Addr: lo, PortMin: 40000, PortMax: 70000}}}, "media.interfaces.external.port_max: 70000 is not a port"},
		{"inverted", Config{Interfaces: map[string]InterfaceConfig{"external": {Addr: lo, PortMin: 45000, PortMax: 40000}}}, "media.interfaces.external.port_min: 45000 is not below port_max 40000"},
		{"no addr", Config{Interfaces: map[string]InterfaceConfig{"internal": {PortMin: 40000, PortMax: 40010}}}, "media.interfaces.internal.addr: required"},
		{"overlap", testConfig(40000, 40005, 10), "media.interfaces.internal: 40005-40014 overlaps media.interfaces.external 40000-40009"},
		{"buffer", func() Config { c := testConfig(40000, 41000, 10); c.SocketBuffer = 100; return c }(), "media.socket_buffer: 100 bytes is outside"},
		{"batch", func() Config { c := testConfig(40000, 41000, 10); c.BatchSize = 5000; return c }(), "media.batch_size: 5000 is outside 1..1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, Deps{})
			var ce ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	r, err := New(testConfig(40000, 41000, 10), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config()
	if c.SocketBuffer != 4<<20 || c.BatchSize != 32 || c.RelatchQuiet != 2*time.Second || c.InactivityTimeout != time.Minute || c.Latching != LatchStrict {
		t.Fatalf("defaults not applied: %+v", c)
	}
	r.Close()
	r.Close()
}

// pair allocates one audio stream between two local "endpoints".
func pair(t testing.TB, r *Relay, mux bool) (a, b *net.UDPConn, id SessionID, info StreamInfo) {
	a, b = udp(t), udp(t)
	id, infos, err := r.Allocate(SessionConfig{Label: "call", Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{
		{Kind: KindAudio, RTCPMux: mux, Remote: [2]netip.AddrPort{addr(a), addr(b)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return a, b, id, infos[0]
}

func TestForwardBothWays(t *testing.T) {
	r, reg := startRelay(t, testConfig(30000, 30100, 100), Deps{})
	for _, mux := range []bool{false, true} {
		name := "rtcp on port+1"
		if mux {
			name = "rtcp-mux"
		}
		t.Run(name, func(t *testing.T) {
			a, b, id, info := pair(t, r, mux)
			if info.Local[0].Port()%2 != 0 || info.Local[1].Port()%2 != 0 {
				t.Fatalf("RTP ports not even: %v", info.Local)
			}
			pa, pb := rtpPacket(1, 1, 172), rtpPacket(2, 1, 172)
			a.WriteToUDPAddrPort(pa, info.Local[0])
			got, from := recv(t, b)
			if string(got) != string(pa) || from != info.Local[1] {
				t.Fatalf("b got %d bytes from %v, want from %v", len(got), from, info.Local[1])
			}
			b.WriteToUDPAddrPort(pb, info.Local[1])
			if got, from := recv(t, a); string(got) != string(pb) || from != info.Local[0] {
				t.Fatalf("a got %d bytes from %v", len(got), from)
			}
			// RTCP: an SR from a, then b's RR referencing it gives RTT and loss.
			var aRTCP, bRTCP *net.UDPConn = a, b
			if !mux {
				aRTCP, bRTCP = udp(t), udp(t)
				if _, err := r.Update(id, []StreamConfig{{Kind: KindAudio, Remote: [2]netip.AddrPort{addr(a), addr(b)},
					RemoteRTCP: [2]netip.AddrPort{addr(aRTCP), addr(bRTCP)}}}); err != nil {
					t.Fatal(err)
				}
			}
			ntp := uint64(0x0000_1234_5678_0000)
			sr := rtp.AppendSR(nil, 1, rtp.SenderInfo{NTP: ntp, PacketCount: 1}, nil)
			aRTCP.WriteToUDPAddrPort(sr, info.LocalRTCP[0])
			expectNext(t, bRTCP, sr)
			rr := rtp.AppendRR(nil, 2, []rtp.ReportBlock{{SSRC: 1, FractionLost: 64, TotalLost: 5, Jitter: 80, LSR: uint32(ntp >> 16), DLSR: 0}})
			bRTCP.WriteToUDPAddrPort(rr, info.LocalRTCP[1])
			expectNext(t, aRTCP, rr)
			st, err := r.Session(id)
			if err != nil {
				t.Fatal(err)
			}
			leg := st.Streams[0].Legs[1]
			if leg.Lost != 5 || leg.LossFraction != 0.25 || leg.JitterMs != 10 || leg.Reports != 1 {
				t.Errorf("leg 1 stats = %+v, want lost 5, fraction .25, jitter 10ms", leg)
			}
			if st.Streams[0].Legs[0].Packets != 2 || st.Streams[0].Legs[0].Forwarded != 2 {
				t.Errorf("leg 0 packets = %+v", st.Streams[0].Legs[0])
			}
			final, err := r.Release(id)
			if err != nil || final.Streams[0].Legs[1].Packets != 2 {
				t.Fatalf("Release = %+v, %v", final, err)
			}
			if _, err := r.Release(id); !errors.Is(err, ErrNoSession) {
				t.Fatalf("second Release err = %v", err)
			}
		})
	}
	// Workers add their tallies to the counters after a batch has been sent,
	// so the last packet's count may land just after its receiver saw it.
	waitFor(t, func() bool { return testutil.ToFloat64(r.m.forwarded) >= 8 })
	if n, err := testutil.GatherAndCount(reg, "portico_media_packets_total"); err != nil || n == 0 {
		t.Errorf("metrics not registered: %d %v", n, err)
	}
}

func TestLatching(t *testing.T) {
	t.Run("strict accepts signalled IP with another port, drops strangers", func(t *testing.T) {
		r, _ := startRelay(t, testConfig(30200, 30300, 20), Deps{})
		a, b := udp(t), udp(t)
		natted := udp(t) // same IP as signalled, different port: latched
		signalled := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), addr(a).Port())
		// Leg 0 signalled at 127.0.0.2: packets from 127.0.0.1 are strangers.
		id, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{Kind: KindAudio, RTCPMux: true, Remote: [2]netip.AddrPort{signalled, addr(b)}}}})
		if err != nil {
			t.Fatal(err)
		}
		in := infos[0]
		a.WriteToUDPAddrPort(rtpPacket(1, 1, 100), in.Local[0])
		waitFor(t, func() bool { st, _ := r.Session(id); return st.Streams[0].Legs[0].Dropped == 1 })
		r.Update(id, []StreamConfig{{Kind: KindAudio, RTCPMux: true, Remote: [2]netip.AddrPort{addr(a), addr(b)}}})
		natted.WriteToUDPAddrPort(rtpPacket(1, 2, 100), in.Local[0]) // same IP, other port: latches
		expectNext(t, b, rtpPacket(1, 2, 100))
		b.WriteToUDPAddrPort(rtpPacket(2, 1, 100), in.Local[1])
		expectNext(t, natted, rtpPacket(2, 1, 100))             // reply goes to the latched port
		a.WriteToUDPAddrPort(rtpPacket(3, 1, 100), in.Local[0]) // not latched: dropped
		natted.WriteToUDPAddrPort(rtpPacket(1, 3, 100), in.Local[0])
		expectNext(t, b, rtpPacket(1, 3, 100))
		// With the fast path the latched peer's packet may overtake the
		// stranger's, which user space drops.
		waitFor(t, func() bool { st, _ := r.Session(id); return st.Streams[0].Legs[0].Dropped >= 2 })
		st, _ := r.Session(id)
		if d := st.Streams[0].Legs[0].Dropped; d != 2 {
			t.Errorf("dropped = %d, want 2 (wrong IP before update, stranger after latch)", d)
		}
		if !st.Streams[0].Legs[0].Latched || st.Streams[0].Legs[0].Peer != addr(natted) {
			t.Errorf("leg 0 peer = %v latched %v", st.Streams[0].Legs[0].Peer, st.Streams[0].Legs[0].Latched)
		}
	})
	t.Run("nat latching and relatch after quiet interval", func(t *testing.T) {
		cfg := testConfig(30400, 30500, 20)
		cfg.Latching = LatchNAT
		cfg.RelatchQuiet = 300 * time.Millisecond
		r, _ := startRelay(t, cfg, Deps{})
		a, b, newA := udp(t), udp(t), udp(t)
		// Leg 0 is behind NAT: it signals a private address (never sent to)
		// and its signalling came from 127.0.0.1, so media from there latches.
		private := netip.MustParseAddrPort("10.1.2.3:4000")
		_, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{Kind: KindVideo, RTCPMux: true,
			Remote: [2]netip.AddrPort{private, addr(b)}, Source: [2]netip.Addr{lo}}}})
		if err != nil {
			t.Fatal(err)
		}
		in := infos[0]
		a.WriteToUDPAddrPort(rtpPacket(1, 1, 100), in.Local[0])
		expectNext(t, b, rtpPacket(1, 1, 100))
		b.WriteToUDPAddrPort(rtpPacket(2, 1, 100), in.Local[1])
		expectNext(t, a, rtpPacket(2, 1, 100))
		newA.WriteToUDPAddrPort(rtpPacket(9, 1, 100), in.Local[0]) // too soon: dropped
		a.WriteToUDPAddrPort(rtpPacket(1, 2, 100), in.Local[0])
		expectNext(t, b, rtpPacket(1, 2, 100))
		time.Sleep(400 * time.Millisecond) // quiet interval passes
		newA.WriteToUDPAddrPort(rtpPacket(9, 2, 100), in.Local[0])
		expectNext(t, b, rtpPacket(9, 2, 100))
		b.WriteToUDPAddrPort(rtpPacket(2, 2, 100), in.Local[1])
		expectNext(t, newA, rtpPacket(2, 2, 100))
		// Tallies reach the counters after each batch is sent.
		waitFor(t, func() bool {
			return testutil.ToFloat64(r.m.relatched) == 1 && testutil.ToFloat64(r.m.strangers) == 1
		})
	})
}

func TestPassThrough(t *testing.T) {
	r, _ := startRelay(t, testConfig(30600, 30700, 20), Deps{})
	a, b, _, in := pair(t, r, true)
	stun := append([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...)
	dtls := append([]byte{22, 0xfe, 0xfd}, make([]byte, 40)...)
	srtp := rtpPacket(7, 1, 200)
	copy(srtp[12:], "opaque-ciphertext-and-auth-tag")
	svc := [][]byte{rtpPacket(100, 1, 1200), rtpPacket(101, 1, 1200), rtpPacket(102, 1, 1200)}
	for _, p := range append([][]byte{stun, dtls, srtp}, svc...) {
		a.WriteToUDPAddrPort(p, in.Local[0])
		expectNext(t, b, p)
	}
}

// tcpSession allocates a BFCP stream whose leg 0 endpoint is active (the
// relay listens) and whose leg 1 endpoint is passive (the relay connects to
// ln), as for a=setup:active / a=setup:passive; leg 0 signals 127.0.0.1.
func tcpSession(t *testing.T, r *Relay) (ln *net.TCPListener, id SessionID, infos []StreamInfo) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	id, infos, err = r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{
		Kind: KindBFCP, Transport: TCP, Role: [2]TCPRole{TCPPassive, TCPActive},
		Remote: [2]netip.AddrPort{netip.AddrPortFrom(lo, 9), ln.Addr().(*net.TCPAddr).AddrPort()},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return ln, id, infos
}

func TestTCPMedia(t *testing.T) {
	r, _ := startRelay(t, testConfig(30800, 30900, 20), Deps{})
	ln, _, infos := tcpSession(t, r)
	ca, err := net.Dial("tcp", infos[0].Local[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	cb, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	hello := []byte("\x20\x01\x00\x00 bfcp hello")
	ca.Write(hello)
	buf := make([]byte, 64)
	cb.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.ReadAtLeast(cb, buf, len(hello))
	if err != nil || string(buf[:n]) != string(hello) {
		t.Fatalf("b read %q, %v", buf[:n], err)
	}
	cb.Write([]byte("reply"))
	ca.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err = io.ReadAtLeast(ca, buf, 5)
	if err != nil || string(buf[:n]) != "reply" {
		t.Fatalf("a read %q, %v", buf[:n], err)
	}
}

func TestPortExhaustion(t *testing.T) {
	r, _ := startRelay(t, testConfig(31000, 31010, 4), Deps{}) // 2 pairs per interface
	sc := SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{Kind: KindAudio}}}
	// Another process may hold one of these ports: then fewer allocations
	// succeed, but the range still ends in ErrNoPorts, never a panic.
	var ids []SessionID
	var err error
	for i := 0; i < 3; i++ {
		var id SessionID
		if id, _, err = r.Allocate(sc); err != nil {
			break
		}
		ids = append(ids, id)
	}
	if len(ids) > 2 {
		t.Fatalf("%d sessions allocated from a range of 2 pairs", len(ids))
	}
	if !errors.Is(err, ErrNoPorts) || !strings.Contains(err.Error(), "31000-31003") {
		t.Fatalf("allocation after %d err = %v, want ErrNoPorts naming the range", len(ids), err)
	}
	if n, _ := r.Available("internal"); n != 2-len(ids) {
		t.Errorf("internal pairs available = %d after a failed allocation, want %d (nothing leaked)", n, 2-len(ids))
	}
	if _, _, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "dmz"}, Streams: []StreamConfig{{Kind: KindAudio}}}); !errors.Is(err, ErrUnknownInterface) {
		t.Fatalf("unknown interface err = %v", err)
	}
	if len(ids) == 0 {
		return
	}
	extBefore, _ := r.Available("external")
	intBefore, _ := r.Available("internal")
	r.Release(ids[0])
	// Sockets close on their worker after the current round; the pairs of
	// both sides then return (each on its own worker, in either order).
	waitFor(t, func() bool {
		e, _ := r.Available("external")
		i, _ := r.Available("internal")
		return e == extBefore+1 && i == intBefore+1
	})
	if _, _, err := r.Allocate(sc); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestUpdateAddsAndDisablesStreams(t *testing.T) {
	r, _ := startRelay(t, testConfig(31100, 31200, 40), Deps{})
	a, b, id, _ := pair(t, r, true)
	rem := [2]netip.AddrPort{addr(a), addr(b)}
	infos, err := r.Update(id, []StreamConfig{
		{Kind: KindAudio, RTCPMux: true, Remote: rem, Hold: true},
		{Kind: KindContent, RTCPMux: true, Remote: rem},
	})
	if err != nil || len(infos) != 2 || !infos[1].Local[0].IsValid() {
		t.Fatalf("Update = %+v, %v", infos, err)
	}
	a.WriteToUDPAddrPort(rtpPacket(5, 1, 1200), infos[1].Local[0])
	expectNext(t, b, rtpPacket(5, 1, 1200))
	infos, err = r.Update(id, []StreamConfig{{Kind: KindAudio, RTCPMux: true, Remote: rem}, {Kind: KindContent, Disabled: true}})
	if err != nil || !infos[1].Disabled || infos[1].Local[0].IsValid() {
		t.Fatalf("disable: %+v, %v", infos, err)
	}
	st, _ := r.Session(id)
	if st.Streams[0].Hold {
		t.Errorf("hold not cleared")
	}
}

func TestInactivityTimeout(t *testing.T) {
	cfg := testConfig(31300, 31400, 20)
	cfg.InactivityTimeout = 200 * time.Millisecond
	var mu sync.Mutex
	var got []Timeout
	r, _ := startRelay(t, cfg, Deps{OnTimeout: func(to Timeout) { mu.Lock(); got = append(got, to); mu.Unlock() }})
	_, _, id, _ := pair(t, r, true)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].ID != id || got[0].Label != "call" || got[0].Silent < cfg.InactivityTimeout {
		t.Fatalf("timeouts = %+v, want exactly one for %v", got, id)
	}
}

// TestZeroAllocsPerPacket measures every allocation in the process (workers
// included) while packets are forwarded both ways: it must be zero.
func TestZeroAllocsPerPacket(t *testing.T) {
	r, _ := startRelay(t, testConfig(31500, 31600, 20), Deps{})
	a, b, _, in := pair(t, r, false)
	pa, pb := rtpPacket(1, 1, 172), rtpPacket(2, 1, 172)
	buf := make([]byte, 2048)
	round := func() {
		a.WriteToUDPAddrPort(pa, in.Local[0])
		b.ReadFromUDPAddrPort(buf)
		b.WriteToUDPAddrPort(pb, in.Local[1])
		a.ReadFromUDPAddrPort(buf)
	}
	a.SetReadDeadline(time.Now().Add(time.Minute))
	b.SetReadDeadline(time.Now().Add(time.Minute))
	for i := 0; i < 50; i++ { // latch both legs, warm up
		round()
	}
	if n := testing.AllocsPerRun(2000, round); n != 0 {
		t.Fatalf("allocations per forwarded packet pair = %v, want 0", n)
	}
}

// TestManySockets opens 16,000 relay sockets (4,000 sessions, RTP and RTCP
// on both legs), forwards through the last one, and releases them all.
func TestManySockets(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 16,000 sockets")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < 17000 {
		want := lim
		want.Cur = min(max(lim.Max, 17000), lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil || want.Cur < 17000 {
			t.Fatalf("RLIMIT_NOFILE %d/%d cannot reach 17000: %v", lim.Cur, lim.Max, err)
		}
		defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	cfg := testConfig(10000, 18100, 8100)
	// The test fills both ranges: its own loopback address keeps ports
	// that tests of other packages bind on 127.0.0.1 out of its way.
	own := netip.MustParseAddr("127.0.77.1")
	for name, ic := range cfg.Interfaces {
		ic.Addr = own
		cfg.Interfaces[name] = ic
	}
	cfg.SocketBuffer = 64 << 10
	r, _ := startRelay(t, cfg, Deps{})
	a, b := udp(t), udp(t)
	var ids []SessionID
	var last StreamInfo
	for i := 0; i < 4000; i++ {
		id, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{Kind: KindAudio, Remote: [2]netip.AddrPort{addr(a), addr(b)}}}})
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		ids = append(ids, id)
		last = infos[0]
	}
	if got := testutil.ToFloat64(r.m.sockets); got != 16000 {
		t.Fatalf("open sockets = %v, want 16000", got)
	}
	a.WriteToUDPAddrPort(rtpPacket(1, 1, 172), last.Local[0])
	expectNext(t, b, rtpPacket(1, 1, 172))
	for _, id := range ids {
		if _, err := r.Release(id); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(r.m.sockets); got != 0 {
		t.Fatalf("open sockets after release = %v", got)
	}
}

// BenchmarkForward measures one packet through the relay and back per
// operation (a→relay→b, b→relay→a) with real loopback sockets.
func BenchmarkForward(b *testing.B) {
	r, _ := startRelay(b, testConfig(31700, 31800, 20), Deps{})
	a, c, _, in := pair(b, r, true)
	pa, pc := rtpPacket(1, 1, 172), rtpPacket(2, 1, 172)
	buf := make([]byte, 2048)
	a.SetReadDeadline(time.Now().Add(time.Hour))
	c.SetReadDeadline(time.Now().Add(time.Hour))
	b.ReportAllocs()
	b.SetBytes(2 * 172)
	for b.Loop() {
		a.WriteToUDPAddrPort(pa, in.Local[0])
		c.ReadFromUDPAddrPort(buf)
		c.WriteToUDPAddrPort(pc, in.Local[1])
		a.ReadFromUDPAddrPort(buf)
	}
}

// BenchmarkForwardBurst sends bursts of 32 packets so the relay's
// recvmmsg/sendmmsg batches fill; one op is one packet.
func BenchmarkForwardBurst(b *testing.B) {
	r, _ := startRelay(b, testConfig(31900, 32000, 20), Deps{})
	a, c, _, in := pair(b, r, true)
	pa := rtpPacket(1, 1, 172)
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(time.Hour))
	b.ReportAllocs()
	b.SetBytes(172)
	n := 0
	for b.Loop() {
		a.WriteToUDPAddrPort(pa, in.Local[0])
		n++
		if n == 32 {
			for ; n > 0; n-- {
				c.ReadFromUDPAddrPort(buf)
			}
		}
	}
	for ; n > 0; n-- {
		c.ReadFromUDPAddrPort(buf)
	}
}
