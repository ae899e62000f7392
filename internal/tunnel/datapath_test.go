package tunnel

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// dataPathEnd is an end with the "rtp" service offered on one loopback
// port, one flow of it from user, and the "sink" service delivered to
// target, its flow 7 open: both kinds of UDP flow in their steady state,
// without a QUIC connection.
func dataPathEnd(t *testing.T) (e *end, user, target net.PacketConn) {
	t.Helper()
	listen := func() net.PacketConn {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	user, target, svc := listen(), listen(), listen()
	e = newEnd(Config{DatagramQueue: 8, MaxFlows: 10, FlowIdle: time.Minute, Services: []Service{
		{Name: "rtp", Proto: "udp", Listen: svc.LocalAddr().String()},
		{Name: "sink", Proto: "udp", Target: target.LocalAddr().String()},
	}}, slog.New(slog.DiscardHandler))
	src := user.LocalAddr().(*net.UDPAddr).AddrPort()
	f := &udpFlow{id: 1, src: src, last: time.Now()}
	e.udp["rtp"] = []*udpService{{e: e, name: "rtp", pc: svc.(*net.UDPConn), st: e.svc["rtp"], idle: time.Minute, max: 10,
		bySrc: map[netip.AddrPort]*udpFlow{src: f}, byID: map[uint32]*udpFlow{1: f}}}
	uc, err := net.DialUDP("udp", nil, target.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	e.flows[flowKey{"sink", 7, 0}] = &targetFlow{conn: uc, st: e.svc["sink"]}
	return e, user, target
}

// TestDataPathAllocs: a flow datagram from the peer delivered to a local
// user or to a target, and one from a local socket queued and bundled,
// allocate nothing once their flows exist.
func TestDataPathAllocs(t *testing.T) {
	e, user, target := dataPathEnd(t)
	var wg sync.WaitGroup
	ctx := context.Background()
	payload := bytes.Repeat([]byte{0x80}, 172)
	toUser := append(Header{Kind: KindUDP, Flow: 1, Service: "rtp"}.Append(nil), payload...)
	toTarget := append(Header{Kind: KindUDP, Flow: 7, Service: "sink"}.Append(nil), payload...)
	buf := make([]byte, 0, 64*1024)
	h := Header{Kind: KindUDP, Flow: 1, Service: "rtp"}

	for _, tc := range []struct {
		name string
		run  func()
	}{
		{"route to a user", func() { e.route(ctx, nil, 0, toUser, &wg) }},
		{"route to a target", func() { e.route(ctx, nil, 0, toTarget, &wg) }},
		{"read from a user and queue", func() {
			e.udp["rtp"][0].received(payload, user.LocalAddr().(*net.UDPAddr).AddrPort())
			e.putBuf(<-e.lanes[0].queue)
		}},
		{"enqueue and bundle", func() {
			e.enqueue(h, payload, e.svc["rtp"])
			e.enqueue(h, payload, e.svc["rtp"])
			var n int
			buf, n, _ = e.fillBundle(e.lanes[0].queue, buf[:0], <-e.lanes[0].queue, 1200)
			if n != 2 {
				t.Fatalf("bundled %d", n)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tc.run); n != 0 {
				t.Fatalf("%v allocations per datagram, want 0", n)
			}
		})
	}
	if d := e.droppedUnknown.Load() + e.badHeaders.Load() + e.droppedQueue.Load(); d != 0 {
		t.Fatalf("%d datagrams dropped", d)
	}
	// The datagrams did arrive: one read each (AllocsPerRun runs 101 times).
	for _, pc := range []net.PacketConn{user, target} {
		rb := make([]byte, 2048)
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(rb)
		if err != nil || !bytes.Equal(rb[:n], payload) {
			t.Fatalf("%s read %d bytes, %v", pc.LocalAddr(), n, err)
		}
	}
}

// TestFillBundleCarries: a queued datagram that does not fit what is left
// of the bundle is handed back for the next one, not lost.
func TestFillBundleCarries(t *testing.T) {
	e := newEnd(Config{DatagramQueue: 8, Services: []Service{{Name: "rtp", Proto: "udp"}}}, slog.New(slog.DiscardHandler))
	h := Header{Kind: KindUDP, Flow: 1, Service: "rtp"}
	for _, size := range []int{700, 600, 400} {
		e.enqueue(h, make([]byte, size), e.svc["rtp"])
	}
	b, n, carry := e.fillBundle(e.lanes[0].queue, nil, <-e.lanes[0].queue, 1200)
	if n != 1 || carry == nil || len(carry.b) != h.Len()+600 {
		t.Fatalf("first bundle: %d entries, carry %v", n, carry)
	}
	if len(b) > 1200 {
		t.Fatalf("bundle of %d bytes", len(b))
	}
	b, n, carry = e.fillBundle(e.lanes[0].queue, nil, carry, 1200)
	if n != 2 || carry != nil || len(b) > 1200 {
		t.Fatalf("second bundle: %d entries in %d bytes, carry %v", n, len(b), carry)
	}
	entries, err := ParseBundle(b, nil)
	if err != nil || len(entries) != 2 || len(entries[1]) != h.Len()+400 {
		t.Fatalf("second bundle parses as %d entries, %v", len(entries), err)
	}
}

// FuzzParseEntry: the end's parser of bundle entries, which takes
// configured service names from the configuration, decodes exactly what
// Parse does and refuses exactly what it refuses.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{"rtp", "sink", "other"} {
		f.Add(append(Header{Kind: KindUDP, Flow: 7, Service: s}.Append(nil), "payload"...))
		f.Add(Header{Kind: KindTCP, Flow: 1, Service: s}.Append(nil))
	}
	f.Add([]byte{0x13, 0, 0, 0, 1, 3, 'r', 't', 'p'}) // kind 3
	f.Add([]byte{0x12, 0, 0, 0, 1, 4, 'r', 't', 'p'}) // name truncated
	e := newEnd(Config{Services: []Service{{Name: "rtp", Proto: "udp"}, {Name: "sink", Proto: "udp"}}}, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := e.parseEntry(b)
		wh, wn, werr := Parse(b)
		if h != wh || n != wn || (err == nil) != (werr == nil) {
			t.Fatalf("parseEntry(%x) = %+v, %d, %v; Parse: %+v, %d, %v", b, h, n, err, wh, wn, werr)
		}
	})
}
