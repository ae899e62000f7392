package tunnel

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// srvServer is an authoritative DNS server for portico.test written in the
// test (no DNS peer is needed for a few records): the SRV record name
// lists targets in order (priority 1, 2, ...), each an A record of
// 127.0.0.1. It counts the SRV queries.
type srvServer struct {
	addr    string
	queries atomic.Int64
}

func startSRVServer(t *testing.T, name string, ports ...int) *srvServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &srvServer{addr: pc.LocalAddr().String()}
	mux := dns.NewServeMux()
	mux.HandleFunc("portico.test.", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		qs := q.Question[0]
		switch {
		case qs.Qtype == dns.TypeSRV && qs.Name == dns.Fqdn(name):
			s.queries.Add(1)
			for i, p := range ports {
				m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: qs.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5},
					Priority: uint16(i + 1), Weight: 10, Port: uint16(p), Target: "node" + strconv.Itoa(i) + ".portico.test."})
			}
		case qs.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qs.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(127, 0, 0, 1)})
		default:
			// No AAAA and no other names: an empty answer.
			if qs.Qtype != dns.TypeAAAA {
				m.Rcode = dns.RcodeNameError
			}
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return s
}

// TestDiscoverServerBySRV: a client with no server address finds the DMZ
// node from an SRV record on a DNS server it is pointed at; when the
// preferred target does not answer, it moves to the next one.
func TestDiscoverServerBySRV(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", &MemState{})
	_, p, _ := net.SplitHostPort(s.addr)
	port, _ := strconv.Atoi(p)
	// A UDP port with nothing behind it, listed first.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.LocalAddr().(*net.UDPAddr).Port
	dead.Close()
	const name = "_portico-tunnel._udp.portico.test"
	dnsSrv := startSRVServer(t, name, deadPort, port)

	c, err := NewClient(Config{Discover: name, Resolver: dnsSrv.addr, IdleTimeout: 500 * time.Millisecond, KeepAlive: 100 * time.Millisecond,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		Services: []Service{{Name: "web", Proto: "tcp", Target: tcpEcho(t)}}}, Deps{State: &MemState{}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.CreateToken()
	if err != nil {
		t.Fatal(err)
	}
	// Enrollment finds the server the same way.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for c.Enroll(ctx, tok) != nil && ctx.Err() == nil {
	}
	if !c.Enrolled() {
		t.Fatal("the client never enrolled with the discovered server")
	}
	runClient(t, c)
	eventually(t, "tunnel up through the discovered server", func() bool { return c.Stats().State == "up" && s.Stats().State == "up" })
	if err := tcpRoundTrip(s.ServiceAddr("web").String(), "found"); err != nil {
		t.Fatalf("flow through the discovered server: %v", err)
	}
	if dnsSrv.queries.Load() < 2 {
		t.Fatalf("SRV queries %d: the first target was not tried first", dnsSrv.queries.Load())
	}
}

// TestDiscoverNoRecord: with no SRV record an attempt fails with an error
// naming the record; Run retries such failures with backoff.
func TestDiscoverNoRecord(t *testing.T) {
	dnsSrv := startSRVServer(t, "_other._udp.portico.test")
	const name = "_portico-tunnel._udp.portico.test"
	c, err := NewClient(Config{Discover: name, Resolver: dnsSrv.addr}, Deps{State: &MemState{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.serverAddr(context.Background(), 0); err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("a missing SRV record: %v", err)
	}
}
