package hasync

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/testpeer"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// benchPair links node a to node b over loopback TLS; sink is b's.
func benchPair(b *testing.B, kind Kind, src Source, sink Sink) (*Node, *Node) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	na, err := New(Config{Peer: ln.Addr().String(), Secret: testSecret}, Deps{Name: "edge-a", Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	nb, err := New(Config{Listen: ln.Addr().String(), Secret: testSecret}, Deps{Name: "edge-b", Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	na.Register(kind, src, nil)
	nb.Register(kind, nil, sink)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { na.Serve(ctx, nil) })
	wg.Go(func() { nb.Serve(ctx, ln) })
	b.Cleanup(func() { cancel(); wg.Wait() })
	for !na.Connected() {
		time.Sleep(time.Millisecond)
	}
	return na, nb
}

// caughtUp waits until the peer acknowledged every change.
func caughtUp(n *Node) {
	for n.Lag() != 0 {
		time.Sleep(100 * time.Microsecond)
	}
}

// BenchmarkReplicateCalls: one op is 1,000 call setups (an audio and a
// video stream each) on relay A, replicated to relay B in another network
// namespace, which binds every session's sockets (IP_FREEBIND). It reports
// A's allocation time per call with and without replication, the lag from
// the last allocation to B's acknowledgement of all 1,000, and the CPU
// time per call of both ends together.
func BenchmarkReplicateCalls(b *testing.B) {
	const calls = 1000
	for _, replicate := range []bool{false, true} {
		b.Run(fmt.Sprintf("replicate=%v", replicate), func(b *testing.B) {
			cfg := media.Config{
				Interfaces: map[string]media.InterfaceConfig{
					"external": {Addr: netip.MustParseAddr("127.0.0.1"), PortMin: 10000, PortMax: 13999},
					"internal": {Addr: netip.MustParseAddr("127.0.0.1"), PortMin: 14000, PortMax: 17999},
				},
				FastPath: media.FastPathOff, InactivityTimeout: -1, SocketBuffer: -1,
			}
			var na *Node
			deps := media.Deps{Logger: quiet()}
			if replicate {
				deps.OnChange = func(id media.SessionID) { na.Changed(KindMedia, MediaKey(id)) }
			}
			ra, err := media.New(cfg, deps)
			if err != nil {
				b.Fatal(err)
			}
			defer ra.Close()
			var rb *media.Relay
			if replicate {
				lab := benchLab(b)
				th := lab.thread("b")
				rb, err = media.New(cfg, media.Deps{Logger: quiet()})
				if err != nil {
					b.Fatal(err)
				}
				defer rb.Close()
				na, _ = benchPair(b, KindMedia, Media{Relay: ra}, nsSink{th: th, sink: Media{Relay: rb}})
			}
			sc := media.SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []media.StreamConfig{
				{Kind: media.KindAudio, Remote: [2]netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:4000"), netip.MustParseAddrPort("10.0.0.1:4000")}},
				{Kind: media.KindVideo, Remote: [2]netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:4002"), netip.MustParseAddrPort("10.0.0.1:4002")}},
			}}
			ids := make([]media.SessionID, 0, calls)
			var setup, lag, cpu time.Duration
			b.ResetTimer()
			for range b.N {
				ids = ids[:0]
				c0 := testpeer.CPUTime()
				t0 := time.Now()
				for range calls {
					id, _, err := ra.Allocate(sc)
					if err != nil {
						b.Fatal(err)
					}
					ids = append(ids, id)
				}
				t1 := time.Now()
				if replicate {
					caughtUp(na)
				}
				t2 := time.Now()
				cpu += testpeer.CPUTime() - c0
				setup += t1.Sub(t0)
				lag += t2.Sub(t1)
				b.StopTimer()
				for _, id := range ids {
					ra.Release(id)
				}
				if replicate {
					caughtUp(na)
					for len(rb.Standby()) != 0 {
						time.Sleep(time.Millisecond)
					}
				}
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(float64(setup.Microseconds())/n/calls, "setup-µs/call")
			b.ReportMetric(float64(lag.Microseconds())/n/1000, "lag-ms/1000calls")
			b.ReportMetric(float64(cpu.Microseconds())/n/calls, "cpu-µs/call")
		})
	}
}

// benchLab is a namespace "b" with its loopback up, for the standby relay.
func benchLab(b *testing.B) *netLab {
	l := &netLab{tb: b, name: fmt.Sprintf("hsb%d", time.Now().UnixNano()%1_000_000)}
	ns := l.ns("b")
	for _, args := range [][]string{{"netns", "add", ns}, {"-n", ns, "link", "set", "lo", "up"}} {
		if out, err := execIP(args...); err != nil {
			b.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	b.Cleanup(func() { execIP("netns", "del", ns) })
	return l
}

func execIP(args ...string) ([]byte, error) { return exec.Command("ip", args...).CombinedOutput() }

// burst announces keys of kind on na and waits until the peer
// acknowledged them all. It returns the time the announcements took, the
// time from the last one to the acknowledgement, and the CPU both nodes
// used.
func burst(na *Node, kind Kind, keys []string) (announce, lag, cpu time.Duration) {
	c0 := testpeer.CPUTime()
	t0 := time.Now()
	for _, k := range keys {
		na.Changed(kind, k)
	}
	t1 := time.Now()
	caughtUp(na)
	t2 := time.Now()
	return t1.Sub(t0), t2.Sub(t1), testpeer.CPUTime() - c0
}

// testEdge is a SIP edge on loopback that is not served (its Import and
// Export methods are what the link uses), with a relay whose 100 ports
// start at portMin; both close when the test ends.
func testEdge(tb testing.TB, portMin int) *sipedge.Server {
	relay, err := media.New(media.Config{Interfaces: map[string]media.InterfaceConfig{
		"external": {Addr: netip.MustParseAddr("127.0.0.1"), PortMin: portMin, PortMax: portMin + 99}}}, media.Deps{Logger: quiet()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { relay.Close() })
	srv, err := sipedge.New(sipedge.Config{Domain: "portico.test",
		Listeners:   []sipedge.Listener{{Interface: sipedge.External, Transport: "udp", Address: "127.0.0.1:0"}, {Interface: sipedge.Internal, Transport: "udp", Address: "127.0.0.1:0"}},
		CallServers: []sipedge.CallServer{{Address: "127.0.0.9:5060"}}}, sipedge.Deps{Media: relay, Logger: quiet()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}

// BenchmarkReplicateRegistrations: one op is 10,000 registrations
// announced on node A and imported by a SIP edge on node B
// (sipedge.ImportRegistration). It reports the cost of announcing one
// change and the lag from the last announcement to B's acknowledgement of
// all 10,000.
func BenchmarkReplicateRegistrations(b *testing.B) {
	const regs = 10000
	srv := testEdge(b, 30000)
	src := newTable()
	na, _ := benchPair(b, KindRegistration, src, Registrations{Server: srv})
	keys := make([]string, regs)
	var announce, lag, cpu time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		exp := time.Now().Add(time.Hour)
		for r := range regs {
			st := sipedge.RegistrationState{
				Info: sipedge.RegistrationInfo{AOR: fmt.Sprintf("sip:user%d@portico.test", r), Contact: fmt.Sprintf("sip:user%d@198.51.100.%d:%d", r, r%250+1, 5060+r%1000),
					Source: fmt.Sprintf("198.51.100.%d:%d", r%250+1, 5060+r%1000), Transport: "udp", FlowToken: "tbd", UserAgent: "bench",
					Registered: exp.Add(-time.Hour), Refreshed: exp.Add(-time.Minute), Expires: exp.Add(time.Duration(i) * time.Second)},
				Flow:    sipedge.Flow{Transport: "udp", Source: netip.MustParseAddrPort(fmt.Sprintf("198.51.100.%d:%d", r%250+1, 5060+r%1000))},
				Contact: fmt.Sprintf("<sip:user%d@198.51.100.%d:%d>", r, r%250+1, 5060+r%1000),
			}
			keys[r] = st.Key()
			src.set(keys[r], string(appendRegistration(nil, &st)))
		}
		b.StartTimer()
		a, l, c := burst(na, KindRegistration, keys)
		announce, lag, cpu = announce+a, lag+l, cpu+c
	}
	n := float64(b.N)
	if got := len(srv.Registrations()); got != regs {
		b.Fatalf("B holds %d registrations, want %d", got, regs)
	}
	// One change at a time: the lag of a single refresh.
	var single time.Duration
	const singles = 200
	for i := range singles {
		k := keys[i%regs]
		t0 := time.Now()
		na.Changed(KindRegistration, k)
		caughtUp(na)
		single += time.Since(t0)
	}
	b.ReportMetric(float64(single.Microseconds())/singles, "single-lag-µs")
	b.ReportMetric(float64(announce.Nanoseconds())/n/regs, "announce-ns/reg")
	b.ReportMetric(float64(lag.Microseconds())/n/1000, "lag-ms/10000regs")
	b.ReportMetric(float64(cpu.Microseconds())/n/regs, "cpu-µs/reg")
}

// BenchmarkReplicateDialogs: one op is 1,000 answered calls announced on
// node A and held as dormant calls by a SIP edge on node B
// (sipedge.ImportCall). It reports the record size, the cost of
// announcing one call and the lag from the last announcement to B's
// acknowledgement of all 1,000.
func BenchmarkReplicateDialogs(b *testing.B) {
	const calls = 1000
	srv := testEdge(b, 30200)
	src := newTable()
	na, _ := benchPair(b, KindDialog, src, Calls{Server: srv})
	keys := make([]string, calls)
	size := 0
	for r := range calls {
		ip := fmt.Sprintf("198.51.100.%d", r%250+1)
		st := sipedge.CallState{ID: fmt.Sprintf("call%04d", r), Type: sipedge.CallRegistered, From: "sip:user@portico.test", To: "sip:1001@portico.test",
			Source: ip + ":5060", Started: time.Now(), Answered: time.Now(), Codecs: "audio:PCMA,video:H264", MediaID: media.SessionID(r + 1),
			Streams: []media.StreamConfig{{Kind: media.KindAudio}, {Kind: media.KindVideo}},
			Legs: [2]sipedge.LegState{
				{Side: sipedge.External, CallID: fmt.Sprintf("%d-abcdef@%s", r, ip), LocalTag: "a1b2c3d4e5f60718", RemoteTag: "9f8e7d6c5b4a3928",
					Local: "sip:1001@portico.test", Remote: "sip:user@portico.test", CSeq: 812, Target: "sip:user@" + ip + ":5060;transport=udp",
					Transport: "udp", Fixed: ip + ":5060"},
				{Side: sipedge.Internal, CallID: "0123456789abcdef01234567", LocalTag: "1122334455667788", RemoteTag: "as5f3c2b1a",
					Local: "sip:user@portico.test", Remote: "sip:1001@portico.test", CSeq: 377, Target: "sip:1001@10.0.0.50:5060",
					Routes: []string{"sip:10.0.0.4;lr"}, Transport: "udp"},
			}}
		body, _ := json.Marshal(st)
		size += len(body)
		keys[r] = st.ID
		src.set(keys[r], string(body))
	}
	var announce, lag, cpu time.Duration
	b.ResetTimer()
	for range b.N {
		a, l, c := burst(na, KindDialog, keys)
		announce, lag, cpu = announce+a, lag+l, cpu+c
	}
	n := float64(b.N)
	if got := srv.DormantCalls(); got != calls {
		b.Fatalf("B holds %d calls, want %d", got, calls)
	}
	b.ReportMetric(float64(size)/calls, "bytes/call")
	b.ReportMetric(float64(announce.Nanoseconds())/n/calls, "announce-ns/call")
	b.ReportMetric(float64(lag.Microseconds())/n/1000, "lag-ms/1000calls")
	b.ReportMetric(float64(cpu.Microseconds())/n/calls, "cpu-µs/call")
}
