package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

func entry(flow uint32, payload string) []byte {
	return append(Header{Kind: KindUDP, Flow: flow, Service: "rtp"}.Append(nil), payload...)
}

func TestBundleRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries [][]byte
	}{
		{"one", [][]byte{entry(1, "a")}},
		{"empty payload", [][]byte{entry(1, "")}},
		{"three", [][]byte{entry(1, "a"), entry(2, "bb"), entry(0xffffffff, string(make([]byte, 172)))}},
		{"most", bytes.Split(bytes.Repeat(append(entry(9, "x"), '|'), maxBundleEntries), []byte{'|'})[:maxBundleEntries]},
		{"largest entry", [][]byte{append(Header{Kind: KindUDP, Flow: 1, Service: "abcdefghijklmnopqrstuvwxyz012345"}.Append(nil), make([]byte, maxDatagram)...)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBundle(nil)
			for _, e := range tc.entries {
				b = appendBundleEntry(b, e)
			}
			got, err := ParseBundle(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.entries) {
				t.Fatalf("%d entries, want %d", len(got), len(tc.entries))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.entries[i]) {
					t.Fatalf("entry %d: %x, want %x", i, got[i], tc.entries[i])
				}
				if _, _, err := Parse(got[i]); err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
			}
		})
	}
}

func TestBundleRejects(t *testing.T) {
	one := appendBundleEntry(newBundle(nil), entry(1, "a"))
	tooMany := newBundle(nil)
	for range maxBundleEntries + 1 {
		tooMany = appendBundleEntry(tooMany, entry(1, "a"))
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"no entries", newBundle(nil)},
		{"flow header, version 1", entry(1, "a")},
		{"version 3", append([]byte{0x30}, one[1:]...)},
		{"low bits set", append([]byte{0x21}, one[1:]...)},
		{"length truncated", append(bytes.Clone(one), 0)},
		{"entry truncated", one[:len(one)-1]},
		{"entry shorter than a header", []byte{0x20, 0, 6, 0x12, 0, 0, 0, 1, 1}},
		{"entry too long", append([]byte{0x20, 0xff, 0xff}, make([]byte, 0xffff)...)},
		{"too many entries", tooMany},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBundle(tc.b, nil)
			if !errors.Is(err, ErrHeader) || len(got) != 0 {
				t.Fatalf("ParseBundle: %d entries, %v", len(got), err)
			}
		})
	}
}

func TestParseBundleAllocs(t *testing.T) {
	b := newBundle(nil)
	for i := range 6 {
		b = appendBundleEntry(b, entry(uint32(i), string(make([]byte, 172))))
	}
	dst := make([][]byte, 0, maxBundleEntries)
	if n := testing.AllocsPerRun(100, func() { dst, _ = ParseBundle(b, dst[:0]) }); n != 0 {
		t.Fatalf("ParseBundle allocates %v times", n)
	}
}

func BenchmarkParseBundle(b *testing.B) {
	buf := newBundle(nil)
	for i := range 6 {
		buf = appendBundleEntry(buf, entry(uint32(i), string(make([]byte, 172))))
	}
	dst := make([][]byte, 0, maxBundleEntries)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = ParseBundle(buf, dst[:0])
	}
}

func FuzzParseBundle(f *testing.F) {
	f.Add(appendBundleEntry(newBundle(nil), entry(1, "a")))
	f.Add(appendBundleEntry(appendBundleEntry(newBundle(nil), entry(1, "a")), entry(2, "bc")))
	f.Add([]byte{0x20, 0, 7, 0x12, 0, 0, 0, 1, 1, 'a', 0})
	f.Add(entry(1, "a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseBundle(b, nil)
		if err != nil {
			if len(got) != 0 {
				t.Fatalf("refused bundle returned %d entries", len(got))
			}
			return
		}
		if len(got) == 0 || len(got) > maxBundleEntries {
			t.Fatalf("%d entries", len(got))
		}
		re := newBundle(nil)
		for _, e := range got {
			if len(e) <= headerFixed || len(e) > maxBundleEntry {
				t.Fatalf("entry of %d bytes", len(e))
			}
			re = appendBundleEntry(re, e)
			if h, n, err := Parse(e); err == nil && (n > len(e) || n != h.Len()) {
				t.Fatalf("entry header n=%d len=%d", n, len(e))
			}
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("re-encode differs")
		}
	})
}

// sinkPair runs a tunnel whose server delivers the "rtp" service to sink,
// a socket the test reads.
func sinkPair(t *testing.T) (sink net.PacketConn, s *runningServer, c *Client) {
	t.Helper()
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	s = startServerConfig(t, "127.0.0.1:0", &MemState{}, Config{Services: []Service{
		{Name: "rtp", Proto: "udp", Target: sink.LocalAddr().String()},
	}})
	c = runEnrolled(t, s, Config{Services: []Service{{Name: "rtp", Proto: "udp", Listen: "127.0.0.1:0"}}})
	return sink, s, c
}

// TestSendLoopBundles: flow datagrams already queued when the sender runs
// leave in fewer QUIC datagrams, none larger than the path takes, and
// reach the peer's target complete and in order; the peer counts the
// bundles it received, and each end the delays of each bundle.
func TestSendLoopBundles(t *testing.T) {
	sink, s, c := sinkPair(t)

	// A second sender on the client's connection, its queue filled before
	// it starts, so that what it bundles does not depend on timing.
	const n = 40
	e := newEnd(Config{DatagramQueue: n, Services: []Service{{Name: "rtp", Proto: "udp"}}}, slog.New(slog.DiscardHandler))
	conn := c.conn.Load()
	e.conn.Store(conn)
	for i := range n {
		e.enqueue(Header{Kind: KindUDP, Flow: 1, Service: "rtp"}, fmt.Appendf(make([]byte, 0, 160), "%03d%0157d", i, 0), e.svc["rtp"])
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.sendLoop(ctx, e.lanes[0]); close(done) }()
	defer func() { cancel(); <-done }()

	buf := make([]byte, 2048)
	for i := range n {
		_ = sink.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, _, err := sink.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if want := fmt.Sprintf("%03d", i); k != 160 || string(buf[:3]) != want {
			t.Fatalf("datagram %d: %d bytes starting %q", i, k, buf[:3])
		}
	}
	limit := datagramLimit(conn)
	perBundle := (limit - 1) / bundleEntryCost(160+Header{Kind: KindUDP, Service: "rtp"}.Len())
	bundles := e.lanes[0].bundles.Load()
	if want := uint64((n + perBundle - 1) / perBundle); bundles != want || e.bundled.Load() != n {
		t.Fatalf("%d datagrams in %d bundles (limit %d bytes), want %d bundles", e.bundled.Load(), bundles, limit, want)
	}
	if got := s.Stats().BundlesReceived; got != bundles {
		t.Fatalf("server received %d bundles, %d sent", got, bundles)
	}
	// Each bundle counts once where it was queued and sent, and once where
	// it was delivered.
	if d := e.stats("client").Delays; d.Queued.Count != bundles || d.Sending.Count != bundles {
		t.Fatalf("sender delays %+v, want %d bundles each", d, bundles)
	}
	// The last bundle's delay is counted just after its last datagram is
	// written.
	d := s.Stats().Delays
	for end := time.Now().Add(5 * time.Second); d.Delivering.Count < bundles && time.Now().Before(end); d = s.Stats().Delays {
		time.Sleep(time.Millisecond)
	}
	if d.Delivering.Count != bundles || d.Delivering.Max == 0 {
		t.Fatalf("receiver delays %+v, want %d bundles delivered", d, bundles)
	}
}

// TestVersionMismatchRefused: the ends refuse a peer of the older tunnel
// protocol (a datagram per flow packet) clearly, both ways.
func TestVersionMismatchRefused(t *testing.T) {
	s, c := enrolledPair(t)

	t.Run("older client", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, release, err := c.dial(ctx, c.tlsConfig(alpnTunnelV1, c.pinned))
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		<-conn.Context().Done()
		var ae *quic.ApplicationError
		if err := context.Cause(conn.Context()); !errors.As(err, &ae) || ae.ErrorCode != codeVersion || !ae.Remote {
			t.Fatalf("connection ended with %v, want application error %d from the server", err, codeVersion)
		}
		if !bytes.Contains([]byte(s.log.String()), []byte("tunnel client refused")) {
			t.Fatalf("server log: %s", s.log.String())
		}
	})

	t.Run("older server", func(t *testing.T) {
		// A listener offering only the older protocol stands in for a
		// server of an older build, with the same pinned certificate.
		old := s.tls.Clone()
		old.NextProtos = []string{alpnTunnelV1}
		ln, err := quic.ListenAddr("127.0.0.1:0", old, quicConfig(c.cfg))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c.cfg.Server = ln.Addr().String()
		_, _, err = c.connect(context.Background())
		if !errors.Is(err, ErrVersion) {
			t.Fatalf("connect: %v, want %v", err, ErrVersion)
		}
	})
}

// TestBadBundlesCounted: a datagram that is not a well-formed bundle is
// dropped whole and counted; a bad entry in a good bundle is dropped alone
// and the entries beside it are delivered.
func TestBadBundlesCounted(t *testing.T) {
	sink, s, c := sinkPair(t)
	conn := c.conn.Load()

	badEntry := []byte{0x12, 0, 0, 0, 1, 1, '/'} // a flow header naming service "/"
	for _, b := range [][]byte{
		entry(1, "a version 1 flow datagram, not a bundle"),
		appendBundleEntry(newBundle(nil), entry(1, "truncated"))[:12],
		appendBundleEntry(appendBundleEntry(newBundle(nil), badEntry), entry(1, "good")),
	} {
		if err := conn.SendDatagram(b); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	_ = sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, _, err := sink.ReadFrom(buf)
	if err != nil || string(buf[:k]) != "good" {
		t.Fatalf("delivered %q, %v; want the good entry", buf[:max(k, 0)], err)
	}
	eventually(t, "three bad datagrams counted", func() bool { return s.Stats().BadHeaders == 3 })
	if got := metricValue(t, s.reg, "portico_tunnel_datagrams_dropped_total", map[string]string{"reason": "bad_header"}); got != 3 {
		t.Fatalf("bad_header metric %v, want 3", got)
	}
}
