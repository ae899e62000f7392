package sipedge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/policy"
	"github.com/portico-edge/portico/internal/testpeer"
)

// countingServer is an inside call server that counts what reaches it. It
// knows one user, "150": a REGISTER without credentials is challenged, one
// with credentials refused (every password is wrong); other users get 404.
type countingServer struct {
	conn net.PacketConn
	mu   sync.Mutex
	got  []*sip.Request
}

func startCountingServer(t *testing.T) *countingServer {
	t.Helper()
	c := &countingServer{conn: listenUDP(t, kamIP)}
	t.Cleanup(func() { c.conn.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := c.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			req, ok := m.(*sip.Request)
			if err != nil || !ok {
				continue
			}
			c.mu.Lock()
			c.got = append(c.got, req)
			c.mu.Unlock()
			var res *sip.Response
			switch {
			case req.To() == nil || req.To().Address.User != "150":
				res = sip.NewResponseFromRequest(req, 404, "Not Found", nil)
			default:
				res = sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
				res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Digest realm="inside", nonce="abc", algorithm=MD5`))
			}
			c.conn.WriteTo([]byte(res.String()), from)
		}
	}()
	return c
}

// received counts requests whose Call-ID starts with prefix ("" for all).
func (c *countingServer) received(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.got {
		if cid := r.CallID(); cid != nil && strings.HasPrefix(string(*cid), prefix) {
			n++
		}
	}
	return n
}

// startGuarded runs a SIP edge guarded by g (and acl, if not nil) in
// front of cs and returns its external UDP address; opts adjust its
// configuration.
func startGuarded(t *testing.T, g *guard.Guard, acl ACL, cs *countingServer, opts ...func(*Config)) netip.AddrPort {
	t.Helper()
	cfg := Config{
		CallServers:   []CallServer{{Address: cs.conn.LocalAddr().String()}},
		Domain:        "portico.test",
		ProbeInterval: -1,
	}
	for _, o := range opts {
		o(&cfg)
	}
	deps := Deps{Logger: slog.New(slog.DiscardHandler), Media: nopMedia{}, ACL: acl}
	if g != nil {
		deps.Guard = g
	}
	_, ext := serveUDP(t, cfg, deps)
	return ext
}

// serveUDP runs a SIP edge with cfg and deps until the test ends, with
// one UDP listener a side (external on extIP, internal on intIP; cfg's
// listeners are set here), and returns it and its external address.
func serveUDP(t testing.TB, cfg Config, deps Deps) (*Server, netip.AddrPort) {
	t.Helper()
	ext, in := listenUDP(t, extIP), listenUDP(t, intIP)
	cfg.Listeners = []Listener{{Interface: External, Transport: "udp", Address: ext.LocalAddr().String()},
		{Interface: Internal, Transport: "udp", Address: in.LocalAddr().String()}}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Serve(ctx, []BoundListener{{Interface: External, Transport: "udp", Packet: ext}, {Interface: Internal, Transport: "udp", Packet: in}})
	}()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	waitServed(t, in.LocalAddr().String(), ext.LocalAddr().String())
	return s, netip.MustParseAddrPort(ext.LocalAddr().String())
}

func newGuard(t *testing.T, cfg guard.Config) *guard.Guard {
	t.Helper()
	g, err := guard.New(cfg, guard.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// sipvicious runs one of its tools from 127.0.0.1 against edge.
func sipvicious(t *testing.T, tool string, edge netip.AddrPort, args ...string) string {
	t.Helper()
	bin := testpeer.Require(t, tool)[0]
	args = append([]string{"-p", fmt.Sprint(edge.Port()), "-P", fmt.Sprint(testpeer.FreePort(t)), "-b", outsideIP, "-x", outsideIP}, args...)
	args = append(args, edge.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish: %s", tool, out)
	}
	_ = err // the tools exit non-zero when they find nothing
	return string(out)
}

// TestGuardStopsSIPVicious: sipvicious' scanner, extension war-dialler and
// password cracker against a guarded edge: the scanner is blocked and the
// call server receives nothing once it is.
func TestGuardStopsSIPVicious(t *testing.T) {
	scanner := netip.MustParseAddr(outsideIP)
	t.Run("user agent", func(t *testing.T) {
		for _, tool := range []struct {
			name string
			args []string
		}{
			{"svmap", nil},
			{"svwar", []string{"-e100-200", "--maximumtime=2"}},
			{"svcrack", []string{"-u150", "-r1-50", "--maximumtime=2"}},
		} {
			t.Run(tool.name, func(t *testing.T) {
				cs := startCountingServer(t)
				g := newGuard(t, guard.Config{})
				edge := startGuarded(t, g, nil, cs)
				out := sipvicious(t, tool.name, edge, tool.args...)
				if !g.Blocked(scanner) {
					t.Fatalf("%s not blocked; it said:\n%s", tool.name, out)
				}
				if n := cs.received(""); n != 0 {
					t.Fatalf("call server received %d requests from a known scanner", n)
				}
				if strings.Contains(out, "150") && strings.Contains(out, "reqauth") {
					t.Fatalf("%s found the extension:\n%s", tool.name, out)
				}
			})
		}
	})
	t.Run("behaviour", func(t *testing.T) {
		// The scanner's user agent is not recognised: its 404s block it.
		// They reach it only with reveal_unknown_users: by default they
		// are answered with a challenge, and svwar gives up at once
		// (TestEnumerationDefeatsSvwar).
		cs := startCountingServer(t)
		g := newGuard(t, guard.Config{ScannerAgents: []string{"no-such-agent"}})
		edge := startGuarded(t, g, nil, cs, func(c *Config) { c.TopologyHiding.RevealUnknownUsers = true })
		out := sipvicious(t, "svwar", edge, "-e100-200", "--force", "--maximumtime=2")
		if !g.Blocked(scanner) {
			t.Fatalf("svwar not blocked; it said:\n%s", out)
		}
		if strings.Contains(out, "150") {
			t.Fatalf("svwar found extension 150 (the 51st it tried):\n%s", out)
		}
		before := cs.received("")
		if before > 11 {
			// svwar's sanity probe for a random extension, then ten 404s.
			t.Fatalf("call server received %d requests, the limit is 10 404s", before)
		}
		dropped := g.Blocks("")[0].Dropped
		sipvicious(t, "svwar", edge, "-e100-200", "--force", "--maximumtime=2")
		if g.Blocks("")[0].Dropped == dropped {
			t.Fatal("second scan dropped nothing")
		}
		barrier(t, edge, cs)
		if n := cs.received(""); n != before+1 {
			t.Fatalf("call server received %d requests after the block", n-before-1)
		}
	})
	t.Run("svcrack behaviour", func(t *testing.T) {
		// svcrack's user agent is not recognised: its refused digests block it.
		cs := startCountingServer(t)
		g := newGuard(t, guard.Config{ScannerAgents: []string{"no-such-agent"}})
		edge := startGuarded(t, g, nil, cs)
		out := sipvicious(t, "svcrack", edge, "-u150", "-r1-100", "--maximumtime=2")
		if !g.Blocked(scanner) {
			t.Fatalf("svcrack not blocked; it said:\n%s", out)
		}
		if b := g.Blocks(""); len(b) != 1 || b[0].Reason != "digest_failure" {
			t.Fatalf("blocks %+v", b)
		}
		if strings.Contains(out, "| 150") {
			t.Fatalf("svcrack cracked 150:\n%s", out)
		}
		// Its first REGISTER (challenged) and five refused guesses.
		if n := cs.received(""); n > 6 {
			t.Fatalf("call server received %d requests", n)
		}
	})
	t.Run("password guessing", func(t *testing.T) {
		// Our own client with an ordinary user agent guesses 150's password.
		cs := startCountingServer(t)
		g := newGuard(t, guard.Config{})
		edge := startGuarded(t, g, nil, cs)
		ua := newRawUA(t, outsideIP, "150")
		to := net.UDPAddrFromAddrPort(edge)
		auth := `Authorization: Digest username="150", realm="inside", nonce="abc", uri="sip:portico.test", response="00000000000000000000000000000000"` + "\r\n"
		guesses := 0
		for !g.Blocked(scanner) {
			if guesses++; guesses > 20 {
				t.Fatal("20 wrong passwords and not blocked")
			}
			ua.callID, ua.tag = fmt.Sprint("guess-", guesses), "g"
			ua.send(to, ua.request("REGISTER", "sip:portico.test", "<sip:150@portico.test>", auth, ""))
			if r := ua.final("REGISTER"); r.StatusCode != 401 {
				t.Fatalf("guess %d answered %d", guesses, r.StatusCode)
			}
		}
		if guesses != 5 {
			t.Errorf("blocked after %d guesses, want 5 (digest_failure default)", guesses)
		}
		for i := range 5 {
			ua.callID = fmt.Sprint("late-", i)
			ua.send(to, ua.request("REGISTER", "sip:portico.test", "<sip:150@portico.test>", auth, ""))
		}
		barrier(t, edge, cs)
		if n := cs.received("late-"); n != 0 {
			t.Fatalf("call server received %d guesses after the block", n)
		}
	})
}

// barrier registers from another, unblocked source and waits for the
// answer: what the edge read before it has been handled.
func barrier(t *testing.T, edge netip.AddrPort, cs *countingServer) {
	t.Helper()
	u := newRawUA(t, "127.0.0.6", "barrier")
	u.callID, u.tag = "barrier", "b"
	u.send(net.UDPAddrFromAddrPort(edge), u.request("REGISTER", "sip:portico.test", "<sip:barrier@portico.test>", "", ""))
	u.final("REGISTER") // any answer: 404 from inside, or the challenge hiding it
}

func TestDigestParam(t *testing.T) {
	tests := []struct {
		name, v, param, want string
	}{
		{"quoted", `Digest username="alice", realm="x"`, "username", "alice"},
		{"case", `Digest Username="alice"`, "username", "alice"},
		{"token", `Digest realm="x", stale=TRUE, nonce="n"`, "stale", "TRUE"},
		{"escaped quote", `Digest username="al\"ice", realm="x"`, "username", `al"ice`},
		{"comma inside quotes", `Digest realm="a,b", username="bob"`, "username", "bob"},
		{"absent", `Digest realm="x"`, "username", ""},
		{"unterminated", `Digest username="bob`, "username", "bob"},
		{"empty", ``, "username", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := digestParam(tt.v, tt.param); got != tt.want {
				t.Fatalf("digestParam(%q, %q) = %q, want %q", tt.v, tt.param, got, tt.want)
			}
		})
	}
}

func FuzzDigestParam(f *testing.F) {
	f.Add(`Digest username="alice", realm="x", nonce="n", uri="sip:a", response="r"`)
	f.Add(`Digest username="a\"b`)
	f.Add(`x=,=,"`)
	f.Fuzz(func(t *testing.T, v string) {
		got := digestParam(v, "username")
		if len(got) > len(v) {
			t.Fatalf("value %q longer than its header %q", got, v)
		}
	})
}

func TestPlausibleSIP(t *testing.T) {
	tests := []struct {
		name string
		b    string
		want bool
	}{
		{"request", "REGISTER sip:a SIP/2.0\r\n", true},
		{"response", "SIP/2.0 200 OK\r\n", true},
		{"keepalive", "\r\n\r\n", true},
		{"stun", "\x00\x01\x00\x00\x21\x12\xa4\x42", true},
		{"http", "GET / HTTP/1.1\r\n", false},
		{"junk", "hello world", false},
		{"lower case method", "register sip:a SIP/2.0\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plausibleSIP([]byte(tt.b)); got != tt.want {
				t.Fatalf("plausibleSIP(%q) = %v", tt.b, got)
			}
		})
	}
}

// TestACLDropsBeforeParsing: a denied network's datagrams and a denied
// user agent's requests never reach the call server, with no guard.
func TestACLDropsBeforeParsing(t *testing.T) {
	acl, err := policy.NewACL("policy.acl.sip", policy.ACLConfig{Deny: []string{outsideIP}, DenyUserAgents: []string{"badphone"}})
	if err != nil {
		t.Fatal(err)
	}
	var live policy.LiveACL
	live.Set(acl)
	cs := startCountingServer(t)
	edge := startGuarded(t, nil, &live, cs)
	// The external listener's own list, set once its address is known.
	ls, err := policy.Listeners("policy.acl.listeners", []policy.ListenerACL{{Listen: edge.String(), Deny: []string{"127.0.0.8"}}})
	if err != nil {
		t.Fatal(err)
	}
	live.Set(acl.WithListeners(ls))
	to := net.UDPAddrFromAddrPort(edge)
	denied := newRawUA(t, outsideIP, "denied")
	denied.callID, denied.tag = "denied-net", "d"
	denied.send(to, denied.request("REGISTER", "sip:portico.test", "<sip:denied@portico.test>", "", ""))
	agent := newRawUA(t, "127.0.0.7", "agent")
	agent.callID, agent.tag = "denied-agent", "a"
	agent.send(to, agent.request("REGISTER", "sip:portico.test", "<sip:agent@portico.test>", "User-Agent: BadPhone 1.0\r\n", ""))
	listener := newRawUA(t, "127.0.0.8", "listener")
	listener.callID, listener.tag = "denied-listener", "l"
	listener.send(to, listener.request("REGISTER", "sip:portico.test", "<sip:listener@portico.test>", "", ""))
	barrier(t, edge, cs)
	if n := cs.received("denied-"); n != 0 {
		t.Fatalf("call server received %d denied requests", n)
	}
}

// TestRateLimitAnswers503: past its burst a source's OPTIONS get 503 with
// Retry-After, or nothing when the action is drop.
func TestRateLimitAnswers503(t *testing.T) {
	for _, action := range []string{"reject", "drop"} {
		t.Run(action, func(t *testing.T) {
			cs := startCountingServer(t)
			g := newGuard(t, guard.Config{RateLimits: guard.RateLimits{Options: &guard.Rate{PerSecond: 0.01, Burst: 2}, Action: action}})
			edge := startGuarded(t, g, nil, cs)
			ua := newRawUA(t, outsideIP, "opts")
			for i := range 3 {
				ua.callID, ua.tag = fmt.Sprint("opt-", action, i), "o"
				ua.send(net.UDPAddrFromAddrPort(edge), ua.request("OPTIONS", "sip:portico.test", "<sip:portico.test>", "", ""))
				if i == 2 && action == "drop" {
					break
				}
				r := ua.final("OPTIONS")
				want := 200
				if i == 2 {
					want = 503
				}
				if r.StatusCode != want {
					t.Fatalf("OPTIONS %d: %d, want %d", i, r.StatusCode, want)
				}
				if ra := r.GetHeader("Retry-After"); i == 2 && (ra == nil || ra.Value() != "100") {
					t.Fatalf("Retry-After %v, want 100", ra)
				}
			}
			if action == "drop" {
				// The dropped third OPTIONS is followed by a fourth from
				// elsewhere, answered: the third had been read and dropped.
				other := newRawUA(t, "127.0.0.8", "opts2")
				other.callID, other.tag = "opt-other", "p"
				other.send(net.UDPAddrFromAddrPort(edge), other.request("OPTIONS", "sip:portico.test", "<sip:portico.test>", "", ""))
				if r := other.final("OPTIONS"); r.StatusCode != 200 {
					t.Fatalf("other source: %d", r.StatusCode)
				}
				select {
				case m := <-ua.inbox:
					t.Fatalf("dropped OPTIONS answered: %v", m)
				default:
				}
			}
		})
	}
}
