package turn

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestRelayPoller hands a relay socket to a relayPoller as the server does
// once its UDP client's fast path is in place: datagrams of channel peers
// reach the client as ChannelData without allocating, a stranger's
// reaches the engine's reader, and Close ends that reader.
func TestRelayPoller(t *testing.T) {
	f := newFastPair(t)
	f.relay.addPeer(f.peerAP, 0x4003, f.cliAP, f.lpc.udp)
	// A quota slot for Close to give back.
	f.relay.h.user = "t"
	f.s.alloc.count++
	f.s.alloc.users["t"]++
	p, err := newRelayPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()

	type read struct {
		data string
		from net.Addr
		err  error
	}
	engine := make(chan read, 4)
	go func() {
		buf := make([]byte, 1600)
		for {
			n, from, err := f.relay.ReadFrom(buf)
			engine <- read{string(buf[:n]), from, err}
			if err != nil {
				return
			}
		}
	}()
	// The reader waits for the first datagram; then it hands the socket
	// to the poller, which relays that datagram too.
	f.relay.usePoller(p)

	stranger := f.sendFromPeers(t)
	buf := make([]byte, 1600)
	_ = f.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 3; i++ {
		n, _, err := f.client.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "\x40\x03\x00\x01"+string(rune('a'+i)) {
			t.Fatalf("client got %q, %v", buf[:n], err)
		}
	}
	select {
	case r := <-engine:
		if r.err != nil || r.data != "engine" || r.from.String() != stranger.LocalAddr().String() {
			t.Fatalf("engine got %q from %v, %v", r.data, r.from, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stranger's datagram did not reach the engine")
	}
	if f.relay.poller.Load() != p || f.relay.in.rb != nil {
		t.Fatal("the socket was not handed to the poller before its first read")
	}
	if got := f.relay.h.fromPeerPkts.Load(); got != 4 {
		t.Errorf("counted %d datagrams from peers, want 4", got)
	}

	payload := make([]byte, 172)
	allocs := testing.AllocsPerRun(200, func() {
		_, _ = f.peer.WriteToUDPAddrPort(payload, f.relayAP)
		_, _, _ = f.client.ReadFromUDPAddrPort(buf)
	})
	if allocs != 0 {
		t.Errorf("peer → client through the poller allocates %v times per datagram", allocs)
	}

	_ = f.relay.Close()
	select {
	case r := <-engine:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("after Close the engine read %q, %v", r.data, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the engine's read")
	}
	if _, ok := p.conns.load()[f.relay.pollID]; ok {
		t.Error("the poller still holds the closed socket")
	}
}
