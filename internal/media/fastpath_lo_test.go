//go:build linux

package media

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/media/rtp"
)

// requireFast fails the test unless r loaded the eBPF program.
func requireFast(t testing.TB, r *Relay) *fastPath {
	t.Helper()
	r.mu.Lock()
	f := r.fast
	r.mu.Unlock()
	if f == nil {
		t.Fatal("eBPF fast path not loaded")
	}
	return f
}

// relayed sends p from src to the relay address to and fails unless dst
// receives it from the relay address from.
func relayed(t testing.TB, src, dst *net.UDPConn, to, from netip.AddrPort, p []byte) {
	t.Helper()
	src.WriteToUDPAddrPort(p, to)
	got, sender := recv(t, dst)
	if string(got) != string(p) || sender != from {
		t.Fatalf("%v got %d bytes from %v, want %d from %v", addr(dst), len(got), sender, len(p), from)
	}
}

// latchBoth sends the first packet each way (SSRC 1 from a, 2 from b):
// user space latches both legs and installs their entries.
func latchBoth(t testing.TB, a, b *net.UDPConn, in StreamInfo, size int) {
	t.Helper()
	relayed(t, a, b, in.Local[0], in.Local[1], rtpPacket(1, 1, size))
	relayed(t, b, a, in.Local[1], in.Local[0], rtpPacket(2, 1, size))
}

// legStats returns leg's packets, of which in the kernel.
func legStats(t testing.TB, r *Relay, id SessionID, leg int) LegStats {
	t.Helper()
	s, err := r.Session(id)
	if err != nil {
		t.Fatal(err)
	}
	return s.Streams[0].Legs[leg]
}

// TestFastPathLoopback relays a call on 127.0.0.1 with the fast path on:
// after the first packet each way (latched in user space), RTP is
// forwarded by the kernel, rewritten to come from the relay's other
// socket, and counted per stream.
func TestFastPathLoopback(t *testing.T) {
	cfg := testConfig(34000, 34100, 20)
	cfg.FastPath = FastPathOn
	r, _ := startRelay(t, cfg, Deps{})
	a, b, id, info := pair(t, r, true)
	requireFast(t, r)
	latchBoth(t, a, b, info, 172)
	const n = 50
	for i := 0; i < n; i++ {
		relayed(t, a, b, info.Local[0], info.Local[1], rtpPacket(1, uint16(i+2), 172))
		relayed(t, b, a, info.Local[1], info.Local[0], rtpPacket(2, uint16(i+2), 172))
	}
	for leg := 0; leg < 2; leg++ {
		l := legStats(t, r, id, leg)
		t.Logf("leg %d: %+v", leg, l)
		if l.Packets != n+1 || l.Forwarded != n+1 || l.Bytes != (n+1)*172 {
			t.Errorf("leg %d: packets %d forwarded %d bytes %d, want %d, %d, %d", leg, l.Packets, l.Forwarded, l.Bytes, n+1, n+1, (n+1)*172)
		}
		if l.InKernel < n-1 {
			t.Errorf("leg %d: %d packets in the kernel, want at least %d", leg, l.InKernel, n-1)
		}
	}
}

// TestFastPathSection: media.fast_path takes auto, on or off and refuses
// anything else with its field path.
func TestFastPathSection(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want FastPath
		bad  bool
	}{{"", FastPathAuto, false}, {"auto", FastPathAuto, false}, {"on", FastPathOn, false}, {"off", FastPathOff, false}, {"yes", 0, true}} {
		t.Run(tc.in, func(t *testing.T) {
			s := DefaultSection()
			s.FastPath = tc.in
			es, _ := field.As(s.Validate())
			c, err := s.Config(Env{External: "192.0.2.1", Internal: "10.0.0.1"})
			if tc.bad {
				if len(es) != 1 || es[0].Path != "media.fast_path" || err == nil {
					t.Errorf("fast_path %q: Validate %v, Config %v; want a media.fast_path error", tc.in, es, err)
				}
				return
			}
			if len(es) != 0 || err != nil || c.FastPath != tc.want {
				t.Errorf("fast_path %q: %v, %v, %v", tc.in, es, err, c.FastPath)
			}
		})
	}
	cfg := testConfig(34200, 34300, 4)
	cfg.FastPath = 7
	if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "media.fast_path") {
		t.Errorf("New with FastPath 7: %v", err)
	}
}

// TestFastPathModes: the metric and the log line say which path runs; on
// that cannot load (a wildcard address names no interface) fails the
// start with the reason, auto falls back to user space and still relays,
// off never loads.
func TestFastPathModes(t *testing.T) {
	wild := func(mode FastPath) Config {
		c := testConfig(34400, 34500, 4)
		for n, ic := range c.Interfaces {
			ic.Addr = netip.MustParseAddr("0.0.0.0")
			c.Interfaces[n] = ic
		}
		c.FastPath = mode
		return c
	}
	t.Run("on fails to start", func(t *testing.T) {
		r, err := New(wild(FastPathOn), Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "fast_path on") || !strings.Contains(err.Error(), "names no interface") {
			t.Errorf("Run = %v, want a fast_path on error with the reason", err)
		}
		r.Close()
	})
	for _, tc := range []struct {
		name string
		cfg  Config
		path string
		log  string
	}{
		{"auto falls back", wild(FastPathAuto), "userspace", "media fast path unavailable"},
		{"off", func() Config { c := testConfig(34600, 34700, 4); c.FastPath = FastPathOff; return c }(), "userspace", "media fast path off"},
		{"auto loads", testConfig(34800, 34900, 4), "ebpf", "media fast path: latched RTP is forwarded in the kernel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			var mu sync.Mutex
			r, reg := startRelay(t, tc.cfg, Deps{Logger: slog.New(slog.NewTextHandler(lockedBuf{&logs, &mu}, nil))})
			a, b, _, info := pair(t, r, true)
			to := info.Local[0]
			if !to.Addr().IsLoopback() {
				to = netip.AddrPortFrom(lo, to.Port())
			}
			p := rtpPacket(1, 1, 100)
			a.WriteToUDPAddrPort(p, to)
			expectNext(t, b, p)
			for _, path := range []string{"ebpf", "userspace"} {
				want := 0.0
				if path == tc.path {
					want = 1
				}
				if got := testutil.ToFloat64(r.fm.path.WithLabelValues(path)); got != want {
					t.Errorf("portico_media_fast_path{path=%q} = %v, want %v", path, got, want)
				}
			}
			if n, err := testutil.GatherAndCount(reg, "portico_media_fast_path_packets_total", "portico_media_fast_path_entries"); err != nil || n != 2 {
				t.Errorf("fast path metrics: %d, %v", n, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, logs.String())
			}
		})
	}
}

type lockedBuf struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (l lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestFastPathFullMapFallsBack fills the kernel map: the stream's entry is
// refused, counted, and its packets are relayed in user space.
func TestFastPathFullMapFallsBack(t *testing.T) {
	r, _ := startRelay(t, testConfig(35000, 35100, 4), Deps{})
	a, b, id, info := pair(t, r, true)
	f := requireFast(t, r)
	for i := 0; ; i++ {
		k := fastKey{LocalAddr: [4]byte{127, 9, byte(i >> 8), byte(i)}}
		if err := f.objs.Flows.Put(&k, &fastValue{}); err != nil {
			break
		}
	}
	latchBoth(t, a, b, info, 100)
	for i := 0; i < 10; i++ {
		p := rtpPacket(1, uint16(i+2), 100)
		a.WriteToUDPAddrPort(p, info.Local[0])
		expectNext(t, b, p)
	}
	if l := legStats(t, r, id, 0); l.Packets != 11 || l.InKernel != 0 {
		t.Errorf("leg 0: %d packets, %d in the kernel; want 11 and 0", l.Packets, l.InKernel)
	}
	if n := testutil.ToFloat64(r.fm.fallbacks); n < 1 {
		t.Errorf("fallbacks = %v, want at least 1", n)
	}
}

// TestFastPathInactivity: the inactivity timeout reads the kernel's
// last-seen time, so a call forwarded only in the kernel does not time
// out, and one that falls silent does.
func TestFastPathInactivity(t *testing.T) {
	timeouts := make(chan Timeout, 4)
	cfg := testConfig(35200, 35300, 4)
	cfg.InactivityTimeout = 400 * time.Millisecond
	r, _ := startRelay(t, cfg, Deps{OnTimeout: func(to Timeout) { timeouts <- to }})
	a, b, id, info := pair(t, r, true)
	requireFast(t, r)
	latchBoth(t, a, b, info, 100)
	for i := 0; i < 24; i++ { // 1.2 s of media, three timeouts' worth
		a.WriteToUDPAddrPort(rtpPacket(1, uint16(i+2), 100), info.Local[0])
		recv(t, b)
		select {
		case to := <-timeouts:
			t.Fatalf("timed out while the kernel forwarded: %+v", to)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if l := legStats(t, r, id, 0); l.InKernel != 24 {
		t.Fatalf("leg 0: %d packets in the kernel, want 24", l.InKernel)
	}
	select {
	case to := <-timeouts:
		if to.ID != id {
			t.Errorf("timeout for %v, want %v", to.ID, id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no timeout after the media stopped")
	}
}

// TestFastPathRelatchRule: the re-latch rule judges a new source by what
// the kernel forwarded. A NAT rebinding continues the sequence numbers the
// kernel saw (more than maxDropout past the last packet user space saw),
// and a peer the kernel keeps forwarding is not silent, so another port of
// its IP cannot take its place.
func TestFastPathRelatchRule(t *testing.T) {
	cfg := testConfig(35400, 35500, 4)
	cfg.RelatchQuiet = 300 * time.Millisecond
	r, _ := startRelay(t, cfg, Deps{})
	a, b, id, info := pair(t, r, true)
	requireFast(t, r)
	latchBoth(t, a, b, info, 60)
	seq := uint16(1)
	for i := 0; i < maxDropout+100; i++ {
		seq++
		a.WriteToUDPAddrPort(rtpPacket(1, seq, 60), info.Local[0])
		recv(t, b)
	}
	a2, a3 := udp(t), udp(t)
	seq++
	moved := rtpPacket(1, seq, 60)
	a2.WriteToUDPAddrPort(moved, info.Local[0])
	expectNext(t, b, moved)
	back := rtpPacket(2, 2, 60)
	b.WriteToUDPAddrPort(back, info.Local[1])
	expectNext(t, a2, back)
	if l := legStats(t, r, id, 0); l.Peer != addr(a2) {
		t.Fatalf("leg 0 peer %v after the rebinding, want %v", l.Peer, addr(a2))
	}
	for end := time.Now().Add(2 * cfg.RelatchQuiet); time.Now().Before(end); {
		seq++
		a2.WriteToUDPAddrPort(rtpPacket(1, seq, 60), info.Local[0])
		recv(t, b)
		time.Sleep(10 * time.Millisecond)
	}
	a3.WriteToUDPAddrPort(rtpPacket(3, 1, 60), info.Local[0])
	waitFor(t, func() bool { return legStats(t, r, id, 0).Dropped == 1 })
	if l := legStats(t, r, id, 0); l.Peer != addr(a2) {
		t.Errorf("leg 0 peer %v, want %v: a peer the kernel forwards was taken for silent", l.Peer, addr(a2))
	}
}

// TestFastPathLeavesToUserSpace: on a stream the kernel forwards, what is
// not RTP still reaches user space: RTCP (its receiver reports keep the
// stream's loss and jitter coming), STUN (RFC 7983: first byte 0..3), and
// RTP from a stranger.
func TestFastPathLeavesToUserSpace(t *testing.T) {
	r, _ := startRelay(t, testConfig(35600, 35700, 4), Deps{})
	a, b, id, info := pair(t, r, true)
	requireFast(t, r)
	latchBoth(t, a, b, info, 100)
	relayed(t, a, b, info.Local[0], info.Local[1], rtpPacket(1, 2, 100))
	rr := rtp.AppendRR(nil, 1, []rtp.ReportBlock{{SSRC: 2, FractionLost: 64, TotalLost: 7, Jitter: 80}})
	relayed(t, a, b, info.Local[0], info.Local[1], rr)
	stun := append([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...)
	relayed(t, a, b, info.Local[0], info.Local[1], stun)
	stranger := udpOn(t, "127.0.0.2")
	stranger.WriteToUDPAddrPort(rtpPacket(1, 3, 100), info.Local[0])
	waitFor(t, func() bool { return legStats(t, r, id, 0).Dropped == 1 })
	l := legStats(t, r, id, 0)
	if l.InKernel != 1 || l.Packets != 4 || l.Reports != 1 || l.Lost != 7 || l.LossFraction != 0.25 {
		t.Errorf("leg 0: in kernel %d (want 1), packets %d (want 4), reports %d lost %d fraction %v (want 1, 7, 0.25)", l.InKernel, l.Packets, l.Reports, l.Lost, l.LossFraction)
	}
	nothingQueued(t, stranger)
}

// TestFastPathScrapeDuringClose: a scrape of the kernel's totals while the
// relay closes reads either the totals or nothing, never a map being closed
// (a race that made a race-enabled daemon exit at shutdown).
func TestFastPathScrapeDuringClose(t *testing.T) {
	cfg := testConfig(34100, 34200, 20)
	cfg.FastPath = FastPathOn
	r, reg := startRelay(t, cfg, Deps{})
	pair(t, r, true)
	requireFast(t, r)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
}
