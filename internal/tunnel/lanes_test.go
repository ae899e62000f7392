package tunnel

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// lanesOwn reports whether every lane of the end sends on its own
// connection.
func lanesOwn(st Stats, n int) bool {
	if len(st.DatagramConnections) != n {
		return false
	}
	for _, l := range st.DatagramConnections {
		if l.State != "up" || !l.Own {
			return false
		}
	}
	return true
}

// TestDatagramConnections: the client makes datagram_connections QUIC
// connections, the flows' datagrams are spread over them both ways, and
// when one drops its flows go on while the client dials it again.
func TestDatagramConnections(t *testing.T) {
	s, c := enrolledPair(t)
	runClient(t, c)
	eventually(t, "four datagram connections on both ends", func() bool {
		return lanesOwn(c.Stats(), DefaultDatagramConnections) && lanesOwn(s.Stats(), DefaultDatagramConnections)
	})
	if got := s.Stats().Connections; got != 1 {
		t.Fatalf("server counts %d tunnel connections, want 1 (datagram connections are not clients)", got)
	}
	if got := s.Stats().Clients; got != 1 {
		t.Fatalf("server has %d clients, want 1", got)
	}
	// Distinct connections, each to the server's one socket.
	seen := map[*quic.Conn]bool{c.conn.Load(): true}
	for _, l := range c.lanes[1:] {
		seen[l.conn.Load()] = true
	}
	if len(seen) != DefaultDatagramConnections {
		t.Fatalf("%d distinct client connections, want %d", len(seen), DefaultDatagramConnections)
	}

	flows := dialUDP(t, s.ServiceAddr("rtp").String(), 32)
	pkt := make([]byte, 172)
	echoAll := func(what string) {
		t.Helper()
		for i, uc := range flows {
			eventually(t, what, func() bool { return udpRoundTrip(uc, append(pkt[:0:0], byte(i))) == nil })
		}
	}
	echoAll("echo through the tunnel")
	for _, end := range []Stats{s.Stats(), c.Stats()} {
		var sum uint64
		for _, l := range end.DatagramConnections {
			if l.BundlesSent == 0 {
				t.Fatalf("%s: datagram connection %d carried nothing: %+v", end.Role, l.Index, end.DatagramConnections)
			}
			sum += l.BundlesSent
		}
		if sum != end.BundlesSent {
			t.Fatalf("%s: bundles %d, connections' sum %d", end.Role, end.BundlesSent, sum)
		}
	}
	if got := metricValue(t, s.reg, "portico_tunnel_datagram_connection_own", map[string]string{"connection": "2"}); got != 1 {
		t.Fatalf("portico_tunnel_datagram_connection_own{connection=2} %v", got)
	}

	// One datagram connection drops: its flows go on the others meanwhile,
	// and it is dialled again.
	old := c.lanes[1].conn.Load()
	_ = old.CloseWithError(codeShutdown, "dropped")
	echoAll("echo after a datagram connection dropped")
	eventually(t, "datagram connection dialled again", func() bool {
		// The server registers the new connection after the client
		// counts it as its own.
		return c.Stats().DatagramConnectionDrops == 1 && lanesOwn(c.Stats(), DefaultDatagramConnections) &&
			lanesOwn(s.Stats(), DefaultDatagramConnections) && c.lanes[1].conn.Load() != old &&
			len(s.laneConns.of(c.Fingerprint())) == DefaultDatagramConnections-1
	})
	for _, l := range s.lanes {
		if l.conn.Load() == old {
			t.Fatal("the server still sends on the dropped connection")
		}
	}
	if got := len(s.laneConns.of(c.Fingerprint())); got != DefaultDatagramConnections-1 {
		t.Fatalf("server holds %d datagram connections of the client, want %d", got, DefaultDatagramConnections-1)
	}
	echoAll("echo on the new datagram connection")
	if got := c.Stats().Reconnects; got != 0 {
		t.Fatalf("tunnel reconnected %d times; only a datagram connection dropped", got)
	}
}

// TestDatagramConnectionsFollowTheTunnel: when the tunnel connection goes
// down the datagram connections go with it, and they come back with it.
func TestDatagramConnectionsFollowTheTunnel(t *testing.T) {
	s, c := enrolledPair(t)
	runClient(t, c)
	eventually(t, "datagram connections up", func() bool { return lanesOwn(c.Stats(), DefaultDatagramConnections) })
	var old []*quic.Conn
	for _, l := range c.lanes[1:] {
		old = append(old, l.conn.Load())
	}
	_ = c.conn.Load().CloseWithError(codeShutdown, "dropped")
	for _, o := range old {
		select {
		case <-o.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a datagram connection outlived its tunnel connection")
		}
	}
	eventually(t, "tunnel and datagram connections back", func() bool {
		return c.Stats().Reconnects == 1 && lanesOwn(c.Stats(), DefaultDatagramConnections) && lanesOwn(s.Stats(), DefaultDatagramConnections)
	})
	for _, l := range c.lanes[1:] {
		if slices.Contains(old, l.conn.Load()) {
			t.Fatal("a datagram connection of the old tunnel connection is in use")
		}
	}
	eventually(t, "the server holds only the new datagram connections", func() bool {
		return len(s.laneConns.of(c.Fingerprint())) == DefaultDatagramConnections-1
	})
	udpEchoes(t, s.ServiceAddr("rtp").String())
}

// TestLaneOf: flows spread over the lanes, and one flow always takes the
// same lane.
func TestLaneOf(t *testing.T) {
	e := newEnd(Config{DatagramConnections: 4}, nil)
	count := make([]int, 4)
	for id := uint32(1); id <= 400; id++ {
		l := e.laneOf(Header{Kind: KindUDP, Flow: id, Service: "media"})
		if e.laneOf(Header{Kind: KindUDP, Flow: id, Service: "media"}) != l {
			t.Fatal("a flow changed lanes")
		}
		count[l.index]++
	}
	for i, n := range count {
		if n < 60 {
			t.Fatalf("lane %d carries %d of 400 flows: %v", i, n, count)
		}
	}
}

// TestDatagramConnectionNeedsPin: a client that is not enrolled cannot
// open a datagram connection either.
func TestDatagramConnectionNeedsPin(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", &MemState{})
	b := newTestClient(t, s.addr, &MemState{})
	before := s.Stats().Rejected
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The client's certificate is checked after the client finished its
	// side of the handshake: the refusal may come as the server closing
	// the new connection.
	if conn, release, err := b.dial(ctx, b.tlsConfig(alpnDatagrams, func(string) bool { return true })); err == nil {
		defer release()
		select {
		case <-conn.Context().Done():
		case <-ctx.Done():
			t.Fatal("datagram connection of an unenrolled client accepted")
		}
	}
	if got := s.Stats().Rejected; got != before+1 {
		t.Fatalf("rejected %d, want %d", got, before+1)
	}
	if n := len(s.laneConns.of(b.Fingerprint())); n != 0 {
		t.Fatalf("server keeps %d datagram connections of an unenrolled client", n)
	}
}
