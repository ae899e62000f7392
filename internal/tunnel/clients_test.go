package tunnel

import (
	"context"
	"net"
	"testing"
	"time"
)

// udpTag is a UDP target that answers every datagram with tag.
func udpTag(t *testing.T, tag string) string {
	return udpServer(t, "127.0.0.1:0", func([]byte, *net.UDPAddr, int) []byte { return []byte(tag) })
}

// answers sends one datagram on c and returns the answer, "" when none
// comes within a second.
func answers(c net.Conn) string {
	if _, err := c.Write([]byte("who")); err != nil {
		return ""
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	b := make([]byte, 16)
	n, err := c.Read(b)
	if err != nil {
		return ""
	}
	return string(b[:n])
}

// TestSeveralClients: two inside nodes connect to one server and both stay
// connected; the one of higher priority carries the server's flows, also
// when it connects second; when it stops, the other carries them at once,
// the same UDP flow included.
func TestSeveralClients(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", &MemState{})
	low := runEnrolled(t, s, Config{Priority: 50, Services: []Service{{Name: "rtp", Proto: "udp", Target: udpTag(t, "low")}}})
	uc, err := net.Dial("udp", s.ServiceAddr("rtp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	eventually(t, "the only client carries the flow", func() bool { return answers(uc) == "low" })

	// The second client, of higher priority, takes over.
	high, err := NewClient(Config{Server: s.addr, Priority: 200, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Services: []Service{{Name: "rtp", Proto: "udp", Target: udpTag(t, "high")}}}, Deps{State: &MemState{}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.CreateToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := high.Enroll(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- high.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "the higher priority carries the flow", func() bool { return answers(uc) == "high" })
	if st := s.Stats(); st.Clients != 2 || st.State != "up" || low.Stats().State != "up" {
		t.Fatalf("server %+v, low client %s", st, low.Stats().State)
	}

	// The active client stops: the other takes over.
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	eventually(t, "the remaining client carries the flow", func() bool { return answers(uc) == "low" })
	if st := s.Stats(); st.Clients != 1 || st.State != "up" {
		t.Fatalf("server after the failover %+v", st)
	}
}
