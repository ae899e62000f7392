package tunnel

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// pollerEnd runs an end's local sockets (no QUIC connection) with the
// "rtp" service offered on a loopback port and "sink" delivered to
// target, flows idle after idle; it skips where the system has no
// localPoller.
func pollerEnd(t *testing.T, idle time.Duration) (e *end, target *net.UDPConn, wg *sync.WaitGroup) {
	t.Helper()
	if p, err := newLocalPoller(); err != nil {
		t.Skip(err)
	} else {
		p.stop()
	}
	target, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	e = newEnd(Config{DatagramQueue: 64, MaxFlows: 10, FlowIdle: idle, Services: []Service{
		{Name: "rtp", Proto: "udp", Listen: "127.0.0.1:0"},
		{Name: "sink", Proto: "udp", Target: target.LocalAddr().String()},
	}}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	wg = &sync.WaitGroup{}
	if err := e.listenServices(ctx, wg); err != nil {
		t.Fatal(err)
	}
	if e.poll.Load() == nil {
		t.Fatal("no poller started")
	}
	t.Cleanup(func() {
		cancel()
		e.closeFlows()
		wg.Wait()
		target.Close()
	})
	return e, target, wg
}

// queued waits for the next flow datagram on the end's lane and returns
// its header and payload.
func queued(t *testing.T, e *end) (Header, []byte) {
	t.Helper()
	select {
	case d := <-e.lanes[0].queue:
		h, n, err := Parse(d.b)
		if err != nil {
			t.Fatal(err)
		}
		return h, append([]byte(nil), d.b[n:]...)
	case <-time.After(5 * time.Second):
		t.Fatal("nothing queued")
	}
	return Header{}, nil
}

// TestPollerOfferedService: datagrams from local users of an offered
// service, read by the poller, are queued under one flow per source.
func TestPollerOfferedService(t *testing.T) {
	e, _, _ := pollerEnd(t, time.Minute)
	svc := e.ServiceAddr("rtp").(*net.UDPAddr)
	var ids []uint32
	for i := range 2 {
		u, err := net.DialUDP("udp", nil, svc)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		for j := range 3 {
			p := []byte{byte(i), byte(j), 0x80}
			if _, err := u.Write(p); err != nil {
				t.Fatal(err)
			}
			h, got := queued(t, e)
			if h.Service != "rtp" || !bytes.Equal(got, p) {
				t.Fatalf("user %d datagram %d queued as %+v %x", i, j, h, got)
			}
			if j == 0 {
				ids = append(ids, h.Flow)
			} else if h.Flow != ids[i] {
				t.Fatalf("user %d changed flow: %d then %d", i, ids[i], h.Flow)
			}
		}
	}
	if ids[0] == ids[1] {
		t.Fatalf("two users share flow %d", ids[0])
	}
	if st := e.svc["rtp"]; st.flows.Load() != 2 {
		t.Fatalf("%d flows, want 2", st.flows.Load())
	}
	// A datagram of an existing flow is read and queued without an
	// allocation.
	u, err := net.DialUDP("udp", nil, svc)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	p := []byte{0x80, 1, 2}
	queuedWithoutAllocs(t, e, func() error { _, err := u.Write(p); return err })
}

// TestPollerDeliveredFlow: a delivered flow's replies, read by the poller,
// are queued under its flow; the flow ends after flow_idle without a reply,
// and at once when the target refuses it.
func TestPollerDeliveredFlow(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		e, target, wg := pollerEnd(t, 200*time.Millisecond)
		h := Header{Kind: KindUDP, Flow: 9, Service: "sink"}
		e.deliver(context.Background(), nil, 0, h, []byte("hello"), wg)
		b := make([]byte, 2048)
		_ = target.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := target.ReadFromUDPAddrPort(b)
		if err != nil || string(b[:n]) != "hello" {
			t.Fatalf("target read %q, %v", b[:n], err)
		}
		if _, err := target.WriteToUDPAddrPort([]byte("answer"), from); err != nil {
			t.Fatal(err)
		}
		if rh, got := queued(t, e); rh != h || string(got) != "answer" {
			t.Fatalf("reply queued as %+v %q", rh, got)
		}
		queuedWithoutAllocs(t, e, func() error { _, err := target.WriteToUDPAddrPort([]byte("answer"), from); return err })
		st := e.svc["sink"]
		if st.flows.Load() != 1 {
			t.Fatalf("%d flows open, want 1", st.flows.Load())
		}
		waitFlows(t, e, 0, 5*time.Second)
	})
	t.Run("refused", func(t *testing.T) {
		e, target, wg := pollerEnd(t, time.Hour)
		target.Close() // nothing listens: the flow's socket reads ECONNREFUSED
		e.deliver(context.Background(), nil, 0, Header{Kind: KindUDP, Flow: 3, Service: "sink"}, []byte("x"), wg)
		waitFlows(t, e, 0, 5*time.Second)
	})
}

// queuedWithoutAllocs checks that a datagram of an existing flow, sent
// by send to a socket the poller reads, is queued without an allocation
// (AllocsPerRun counts every goroutine's).
func queuedWithoutAllocs(t *testing.T, e *end, send func() error) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second) // for all of them: time.After would allocate
	defer timeout.Stop()
	n := testing.AllocsPerRun(50, func() {
		if err := send(); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-e.lanes[0].queue:
			e.putBuf(d)
		case <-timeout.C:
			t.Fatal("nothing queued")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per datagram read, want 0", n)
	}
}

// waitFlows waits until the "sink" service has n flows open and no flow
// left in the end's table.
func waitFlows(t *testing.T, e *end, n int64, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		e.fmu.Lock()
		left := len(e.flows)
		e.fmu.Unlock()
		if got := e.svc["sink"].flows.Load(); got == n && left == int(n) {
			return
		} else if time.Now().After(end) {
			t.Fatalf("%d flows open (%d in the table), want %d", got, left, n)
		}
	}
}
