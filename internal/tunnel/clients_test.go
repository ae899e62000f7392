package tunnel

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
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
	_, stopHigh := startClient(t, s, Config{Priority: 200, Services: []Service{{Name: "rtp", Proto: "udp", Target: udpTag(t, "high")}}})
	eventually(t, "the higher priority carries the flow", func() bool { return answers(uc) == "high" })
	if st := s.Stats(); st.Clients != 2 || st.State != "up" || low.Stats().State != "up" {
		t.Fatalf("server %+v, low client %s", st, low.Stats().State)
	}

	// The active client stops: the other takes over.
	stopHigh()
	eventually(t, "the remaining client carries the flow", func() bool { return answers(uc) == "low" })
	if st := s.Stats(); st.Clients != 1 || st.State != "up" {
		t.Fatalf("server after the failover %+v", st)
	}
}

// tcpTag is a TCP target that writes tag to every connection and closes it.
func tcpTag(t *testing.T, tag string) string {
	return tcpServer(t, "127.0.0.1:0", func(c net.Conn) { _, _ = c.Write([]byte(tag)) })
}

// tcpAnswer reads what a TCP connection to addr is sent, "" on failure.
func tcpAnswer(addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// startClient enrolls a client of s from cfg and runs it until stop is
// called (or the test ends).
func startClient(t *testing.T, s *runningServer, cfg Config) (c *Client, stop func()) {
	t.Helper()
	c = enrolledClient(t, s, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("client Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// TestServicesSplitAmongClients: two clients deliver the same services
// with their own priority for each. Each mode-one service is carried by
// the client that ranks it highest, so the services split between them;
// a mode-all service spreads its flows over both, each flow staying on
// its client. When one client stops, its services and flows move to the
// other at once and the others stay where they were; the server reports
// who serves each service and counts and announces each change.
func TestServicesSplitAmongClients(t *testing.T) {
	ev := &eventLog{}
	lb := &logBuf{}
	sv, err := NewServer(Config{Services: []Service{
		{Name: "sip", Proto: "udp", Listen: "127.0.0.1:0"},
		{Name: "web", Proto: "tcp", Listen: "127.0.0.1:0"},
		{Name: "media", Proto: "udp", Listen: "127.0.0.1:0", Mode: ModeAll},
	}}, Deps{State: &MemState{}, OnEvent: ev.add, Logger: slog.New(slog.NewTextHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := serveServer(t, sv, lb)
	client := func(tag string, sip, web int) Config {
		return Config{Services: []Service{
			{Name: "sip", Proto: "udp", Target: udpTag(t, tag), Priority: sip},
			{Name: "web", Proto: "tcp", Target: tcpTag(t, tag), Priority: web},
			{Name: "media", Proto: "udp", Target: udpTag(t, tag)},
		}}
	}
	a, _ := startClient(t, s, client("a", 200, 50))
	b, stopB := startClient(t, s, client("b", 50, 200))
	eventually(t, "both clients serve", func() bool {
		st := s.Stats()
		return st.Clients == 2 && len(byName(st)["media"].ServedBy) == 2 && a.Stats().State == "up" && b.Stats().State == "up"
	})

	sip, err := net.Dial("udp", s.ServiceAddr("sip").String())
	if err != nil {
		t.Fatal(err)
	}
	defer sip.Close()
	web := s.ServiceAddr("web").String()
	eventually(t, "sip through a, web through b", func() bool { return answers(sip) == "a" && tcpAnswer(web) == "b" })
	cl := map[string]ClientStats{}
	for _, x := range s.Stats().ClientList {
		cl[x.Fingerprint] = x
	}
	if ca, cb := cl[a.Fingerprint()], cl[b.Fingerprint()]; len(cl) != 2 || ca.Services["sip"] != 200 || ca.Services["web"] != 50 || cb.Services["web"] != 200 || ca.Priority != DefaultPriority {
		t.Fatalf("client list %+v", cl)
	}
	st := byName(s.Stats())
	if st["sip"].Mode != ModeOne || len(st["sip"].ServedBy) != 1 || len(st["web"].ServedBy) != 1 || st["sip"].ServedBy[0] == st["web"].ServedBy[0] {
		t.Fatalf("served by: sip %+v, web %+v", st["sip"], st["web"])
	}

	// Media flows spread over both clients and stay on theirs.
	var flows []net.Conn
	on := map[string]int{}
	for range 16 {
		c, err := net.Dial("udp", s.ServiceAddr("media").String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var got string
		eventually(t, "media answer", func() bool { got = answers(c); return got != "" })
		for range 3 {
			if again := answers(c); again != got {
				t.Fatalf("a media flow moved from %s to %s", got, again)
			}
		}
		flows = append(flows, c)
		on[got]++
	}
	if on["a"] == 0 || on["b"] == 0 {
		t.Fatalf("media flows by client %v, want both used", on)
	}

	// b stops: web and b's media flows move to a; sip stays.
	moves := byName(s.Stats())["web"].Moves
	stopB()
	eventually(t, "web through a", func() bool { return tcpAnswer(web) == "a" })
	for i, c := range flows {
		if got := answers(c); got != "a" {
			eventually(t, fmt.Sprintf("media flow %d through a", i), func() bool { return answers(c) == "a" })
		}
	}
	if answers(sip) != "a" {
		t.Fatal("sip left a")
	}
	st = byName(s.Stats())
	if st["web"].Moves <= moves || len(st["media"].ServedBy) != 1 || !slices.Equal(st["web"].ServedBy, st["sip"].ServedBy) {
		t.Fatalf("after b stopped: %+v", st)
	}
	if !ev.has("info tunnel service web served by " + st["web"].ServedBy[0]) {
		t.Fatalf("events %v", ev.got)
	}
	gather, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range gather {
		if mf.GetName() == "portico_tunnel_service_moves_total" {
			for _, m := range mf.GetMetric() {
				found = found || m.GetLabel()[0].GetValue() == "web" && m.GetCounter().GetValue() == float64(st["web"].Moves)
			}
		}
	}
	if !found {
		t.Fatal("no portico_tunnel_service_moves_total for web")
	}
}

// byName indexes a Stats' services by name.
func byName(st Stats) map[string]ServiceStats {
	m := map[string]ServiceStats{}
	for _, s := range st.Services {
		m[s.Name] = s
	}
	return m
}

// TestReverseFlowsOfTwoClients: two clients offer the same reverse UDP
// service and each numbers its first flow 1. The server delivers them as
// two flows, from two sockets, and each client's user gets the answers to
// its own datagrams only (one flow for both would hand one user's answers
// to the other, through the client that sent last).
func TestReverseFlowsOfTwoClients(t *testing.T) {
	target := udpServer(t, "127.0.0.1:0", func(b []byte, from *net.UDPAddr, _ int) []byte {
		return []byte(string(b) + "@" + from.String())
	})
	s := startServerConfig(t, "127.0.0.1:0", &MemState{}, Config{Services: []Service{
		{Name: "sip-in", Proto: "udp", Target: target},
	}})
	offer := Config{Services: []Service{{Name: "sip-in", Proto: "udp", Listen: "127.0.0.1:0"}}}
	a, _ := startClient(t, s, offer)
	b, _ := startClient(t, s, offer)
	eventually(t, "both clients up", func() bool {
		return s.Stats().Clients == 2 && a.Stats().State == "up" && b.Stats().State == "up" &&
			a.ServiceAddr("sip-in") != nil && b.ServiceAddr("sip-in") != nil
	})
	dial := func(c *Client) net.Conn {
		u, err := net.Dial("udp", c.ServiceAddr("sip-in").String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.Close() })
		return u
	}
	ua, ub := dial(a), dial(b)
	ask := func(u net.Conn, what string) string {
		if _, err := u.Write([]byte(what)); err != nil {
			t.Fatal(err)
		}
		_ = u.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 128)
		n, err := u.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}
	var srcA, srcB string
	for i := range 5 {
		ra, rb := ask(ua, fmt.Sprint("a", i)), ask(ub, fmt.Sprint("b", i))
		wa, wb := fmt.Sprint("a", i, "@"), fmt.Sprint("b", i, "@")
		if !strings.HasPrefix(ra, wa) || !strings.HasPrefix(rb, wb) {
			t.Fatalf("answers %q to a's user and %q to b's, want %s… and %s…", ra, rb, wa, wb)
		}
		srcA, srcB = strings.TrimPrefix(ra, wa), strings.TrimPrefix(rb, wb)
	}
	if srcA == srcB {
		t.Fatalf("both clients' flows reached the target from one socket (%s)", srcA)
	}
}
