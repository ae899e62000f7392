package callsig

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// closedByPeer reports whether c reaches EOF (or a reset) before data.
func closedByPeer(t testing.TB, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(deadline())
	b := make([]byte, 1)
	_, err := c.Read(b)
	var ne net.Error
	return errors.Is(err, io.EOF) || err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		deny  bool
		route bool
		busy  bool // a first call holds the only slot
		cause byte
		disp  string
	}{
		{name: "guest denied by policy", deny: true, route: true, cause: CauseRejected, disp: "policy: destination not allowed"},
		{name: "no route", cause: CauseNoRoute, disp: "no route to destination"},
		{name: "max calls", cfg: Config{MaxCalls: 1}, route: true, busy: true, cause: CauseResourceUnavail, disp: "resource unavailable: max calls reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startPortico(t, tt.cfg)
			calleeLn := listenTCP(t, insideEP)
			p.mu.Lock()
			p.deny = tt.deny
			if tt.route {
				p.route = lnAddr(calleeLn)
			}
			p.mu.Unlock()
			if tt.busy {
				first := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
				first.send(q931.Setup, false, setupUI("1000", newCallID(), netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, nil))
				callee := newEndpoint(t, accept(t, calleeLn))
				callee.expect(q931.Setup) // the first call holds its slot, unanswered
			}
			caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
			caller.send(q931.Setup, false, setupUI("1000", newCallID(), netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, nil))
			m, _ := caller.expect(q931.ReleaseComplete)
			if c := cause(t, m); c != tt.cause {
				t.Fatalf("cause %d, want %d", c, tt.cause)
			}
			if !m.FromDestination || m.CallRef != 42 {
				t.Fatalf("call reference %d flag %v", m.CallRef, m.FromDestination)
			}
			rec := p.hist.next(t)
			if rec.Disposition != tt.disp || rec.Status != int(tt.cause) || rec.EndedBy != "portico" || rec.Protocol != "h323" {
				t.Fatalf("history: %+v", rec)
			}
		})
	}
}

// TestMalformed sends broken input; each is answered with
// ReleaseComplete (or, below the Q.931 layer, the connection closes) and
// a call in progress on another connection carries on.
func TestMalformed(t *testing.T) {
	p := startPortico(t, Config{MaxFrame: 2048, SetupTimeout: 2 * time.Second})
	// A call in progress that must survive.
	calleeLn := routeTo(t, p)
	id := newCallID()
	live, liveCallee := placeCall(t, p.outAddr, calleeLn, id)

	setup := func() []byte {
		uu, _ := setupUI("1000", newCallID(), netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, nil).Marshal()
		m := &q931.Message{CallRefLen: 2, CallRef: 7, Type: q931.Setup}
		m.SetUserUser(uu)
		b, _ := m.Append(nil)
		return b
	}()
	tests := []struct {
		name   string
		stream []byte
		rc     bool // answered with ReleaseComplete (else closed)
	}{
		{"bad Q.931", []byte{3, 0, 0, 9, 0x09, 2, 0, 7, 5}, true},
		{"bad user-user", []byte{3, 0, 0, 13, 8, 2, 0, 7, 5, 0x7e, 0, 2, 5, 0xff}, true},
		{"truncated UUIE", func() []byte {
			b := append([]byte(nil), setup[:len(setup)-3]...)
			b[len(b)-1] = 0
			return tpkt(b[:len(b)-1])
		}(), true},
		{"not a Setup", tpkt([]byte{8, 2, 0, 7, q931.Connect}), true},
		{"bad TPKT version", []byte{4, 0, 0, 8, 1, 2, 3, 4}, false},
		{"frame over the cap", append([]byte{3, 0, 0x10, 0x00}, bytes.Repeat([]byte{0}, 100)...), false},
		{"silent connection", nil, false},
		{"cut frame", []byte{3, 0, 0, 40, 8}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFrom(t, outsideEP, p.outAddr)
			if _, err := c.Write(tt.stream); err != nil {
				t.Fatal(err)
			}
			if tt.rc {
				e := newEndpoint(t, c)
				m, _, err := e.tryRecv()
				if err != nil || m.Type != q931.ReleaseComplete {
					t.Fatalf("want ReleaseComplete, got %v %v", m, err)
				}
				if cv := cause(t, m); cv != CauseInvalidMessage {
					t.Fatalf("cause %d", cv)
				}
			}
			if !closedByPeer(t, c) {
				t.Fatal("connection left open")
			}
		})
	}
	// Malformed inside an established call: both sides are cleared.
	t.Run("mid-call", func(t *testing.T) {
		id2 := newCallID()
		caller, callee := placeCall(t, p.outAddr, calleeLn, id2)
		callee.sendRaw([]byte{8, 2, 0x80, 42, q931.Alerting, 0x7e, 0, 3, 5, 0xff, 0xff})
		m, _ := callee.expect(q931.ReleaseComplete)
		if cv := cause(t, m); cv != CauseInvalidMessage {
			t.Fatalf("sender got cause %d", cv)
		}
		m, _ = caller.expect(q931.ReleaseComplete)
		if cv := cause(t, m); cv != CauseTemporary {
			t.Fatalf("other side got cause %d", cv)
		}
	})
	// The live call still works.
	liveCallee.send(q931.Alerting, true, answerUI(h225.H323UUPDUH323MessageBody_Alerting, id, netip.AddrPort{}, nil))
	live.expect(q931.Alerting)
	if p.srv.Malformed.Load() < 7 { // all but the silent and the cut connection
		t.Fatalf("malformed counter %d", p.srv.Malformed.Load())
	}
}

func tpkt(b []byte) []byte {
	n := len(b) + 4
	return append([]byte{3, 0, byte(n >> 8), byte(n)}, b...)
}

// TestAnswerTimeout: a call the callee never answers is cleared on both
// sides with cause 102.
func TestAnswerTimeout(t *testing.T) {
	p := startPortico(t, Config{AnswerTimeout: 300 * time.Millisecond})
	calleeLn := routeTo(t, p)
	caller, callee := placeCall(t, p.outAddr, calleeLn, newCallID())
	for _, e := range []*endpoint{caller, callee} {
		m, _ := e.expect(q931.ReleaseComplete)
		if c := cause(t, m); c != CauseRecoveryTimer {
			t.Fatalf("cause %d", c)
		}
	}
	if rec := p.hist.next(t); rec.Disposition != "timeout: no answer" {
		t.Fatalf("history: %+v", rec)
	}
}

// TestCallInsideToOutside calls a registered outside endpoint from inside;
// what reaches it names only Portico's outside address.
func TestCallInsideToOutside(t *testing.T) {
	p := startPortico(t, Config{})
	epLn := listenTCP(t, outsideEP)
	p.mu.Lock()
	p.registry["2000"] = Endpoint{ID: "ep-1", CallSignal: lnAddr(epLn)}
	p.mu.Unlock()
	id := newCallID()
	caller := newEndpoint(t, dialFrom(t, insideEP, p.inAddr))
	aRTP := udp(t, insideEP)
	fast := encOLC(t, olcRx(2, 1, g711(), udpAddr(aRTP), netip.AddrPortFrom(insideEP, udpAddr(aRTP).Port()+1)))
	caller.send(q931.Setup, false, setupUI("2000", id, netip.AddrPortFrom(insideEP, 1720), netip.AddrPortFrom(insideEP, 1721), fast))
	callee := newEndpoint(t, accept(t, epLn))
	_, ui := callee.expect(q931.Setup)
	s := ui.H323UuPdu.H323MessageBody.Setup
	if ap, _ := ras.AddrPort(s.SourceCallSignalAddress); ap.Addr() != porticoOut {
		t.Fatalf("sourceCallSignalAddress %v", ap)
	}
	if ip, bad := leaks(callee.got, insideEP, porticoIn); bad {
		t.Fatalf("inside address %v reached the outside", ip)
	}
	callee.send(q931.ReleaseComplete, true, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, id, netip.AddrPort{}, nil), withCause(CauseBusy))
	m, _ := caller.expect(q931.ReleaseComplete)
	if c := cause(t, m); c != CauseBusy {
		t.Fatalf("cause %d", c)
	}
	if rec := p.hist.next(t); rec.Disposition != "callee busy" || rec.EndedBy != "callee" || rec.CallType != "inbound" {
		t.Fatalf("history: %+v", rec)
	}
	// An alias nobody registered.
	c2 := newEndpoint(t, dialFrom(t, insideEP, p.inAddr))
	c2.send(q931.Setup, false, setupUI("2999", newCallID(), netip.AddrPortFrom(insideEP, 1720), netip.AddrPort{}, nil))
	m, _ = c2.expect(q931.ReleaseComplete)
	if c := cause(t, m); c != CauseUnallocated {
		t.Fatalf("cause %d", c)
	}
}

// fakeTraversal stands in for h323proxy's SCI/SCR traversal server: on
// Connect it makes the "endpoint" (the test) connect to Portico and send
// Facility, and hands Connect the connection Arrived received.
type fakeTraversal struct {
	t       testing.TB
	portico netip.AddrPort
	waiting chan chan net.Conn
	ep      chan *endpoint
}

func (f *fakeTraversal) Connect(ctx context.Context, ep Endpoint, callID [16]byte) (net.Conn, error) {
	ch := make(chan net.Conn, 1)
	f.waiting <- ch
	go func() {
		e := newEndpoint(f.t, dialFrom(f.t, outsideEP, f.portico))
		e.send(q931.Facility, false, answerUI(h225.H323UUPDUH323MessageBody_Facility, callID[:], netip.AddrPort{}, nil))
		f.ep <- e
	}()
	select {
	case c := <-ch:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fakeTraversal) Arrived(callID [16]byte, conn net.Conn) bool {
	select {
	case ch := <-f.waiting:
		ch <- conn
		return true
	default:
		return false
	}
}

// TestCallInsideToH46018 calls an H.460.18 endpoint: it connects to
// Portico with a Facility and then receives the Setup on that connection.
func TestCallInsideToH46018(t *testing.T) {
	ft := &fakeTraversal{t: t, waiting: make(chan chan net.Conn, 1), ep: make(chan *endpoint, 1)}
	p := startPortico(t, Config{}, func(d *Deps) { d.Traversal = ft })
	ft.portico = p.outAddr
	p.mu.Lock()
	p.registry["3000"] = Endpoint{ID: "ep-18", H46018: true}
	p.mu.Unlock()
	id := newCallID()
	caller := newEndpoint(t, dialFrom(t, insideEP, p.inAddr))
	caller.send(q931.Setup, false, setupUI("3000", id, netip.AddrPortFrom(insideEP, 1720), netip.AddrPort{}, nil))
	ep := <-ft.ep
	_, ui := ep.expect(q931.Setup)
	if g := ui.H323UuPdu.H323MessageBody.Setup.CallIdentifier.Guid; !bytes.Equal(g, id) {
		t.Fatalf("call identifier % x", g)
	}
	ep.send(q931.Connect, true, answerUI(h225.H323UUPDUH323MessageBody_Connect, id, netip.AddrPort{}, nil))
	caller.expect(q931.Connect)
	if !p.srv.Busy(ep.conn.LocalAddr()) || !p.srv.Busy(caller.conn.LocalAddr()) {
		t.Fatal("connections of a call not busy")
	}
	if p.srv.Busy(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 1}) {
		t.Fatal("stranger busy")
	}
}

// fakeGuard blocks what it is told to and records observations.
type fakeGuard struct {
	mu       sync.Mutex
	blocked  map[netip.Addr]bool
	observed map[guard.Kind]int
}

func (g *fakeGuard) Blocked(src netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.blocked[src]
}

func (g *fakeGuard) Observe(src netip.Addr, k guard.Kind) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.observed[k]++
	return false
}

func (g *fakeGuard) count(k guard.Kind) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.observed[k]
}

// TestGuard: a blocked outside source is closed unread; Setups, policy
// refusals and malformed messages from outside are reported; the inside
// is not guarded.
func TestGuard(t *testing.T) {
	g := &fakeGuard{blocked: map[netip.Addr]bool{netip.MustParseAddr("127.0.0.9"): true}, observed: map[guard.Kind]int{}}
	p := startPortico(t, Config{}, func(d *Deps) { d.Guard = g })
	p.mu.Lock()
	p.deny = true
	p.mu.Unlock()
	blocked := dialFrom(t, netip.MustParseAddr("127.0.0.9"), p.outAddr)
	if !closedByPeer(t, blocked) {
		t.Fatal("blocked source served")
	}
	caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	caller.send(q931.Setup, false, setupUI("1000", newCallID(), netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, nil))
	caller.expect(q931.ReleaseComplete)
	bad := dialFrom(t, outsideEP, p.outAddr)
	bad.Write([]byte{3, 0, 0, 9, 0x09, 2, 0, 7, 5})
	closedByPeer(t, bad)
	inside := dialFrom(t, insideEP, p.inAddr)
	inside.Write([]byte{3, 0, 0, 9, 0x09, 2, 0, 7, 5})
	closedByPeer(t, inside)
	if g.count(guard.Invite) != 1 || g.count(guard.Forbidden) != 1 || g.count(guard.Malformed) != 1 {
		t.Fatalf("observations %v", g.observed)
	}
}

// TestCloseReleasesCalls: Close clears calls in progress on both sides
// with ReleaseComplete and records them.
func TestCloseReleasesCalls(t *testing.T) {
	p := startPortico(t, Config{})
	calleeLn := routeTo(t, p)
	caller, callee := placeCall(t, p.outAddr, calleeLn, newCallID())
	p.srv.Close()
	p.srv.Close()
	for _, e := range []*endpoint{caller, callee} {
		m, _ := e.expect(q931.ReleaseComplete)
		if c := cause(t, m); c != CauseTemporary {
			t.Fatalf("cause %d", c)
		}
	}
	if rec := p.hist.next(t); rec.Disposition != "portico shutting down" {
		t.Fatalf("history %+v", rec)
	}
}

// TestForeignCallReference: Portico carries one call per connection; a
// message for another call reference (a second Setup on the same
// connection) is refused with cause 81 and not forwarded into the call.
func TestForeignCallReference(t *testing.T) {
	p := startPortico(t, Config{})
	calleeLn := routeTo(t, p)
	id := newCallID()
	caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	setup := setupUI("1000", id, netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, nil)
	setup.H323UuPdu.H323MessageBody.Setup.MultipleCalls = true
	caller.send(q931.Setup, false, setup)
	callee := newEndpoint(t, accept(t, calleeLn))
	_, ui := callee.expect(q931.Setup)
	caller.crv = 43
	if ui.H323UuPdu.H323MessageBody.Setup.MultipleCalls {
		t.Fatal("multipleCalls offered to the callee")
	}
	caller.send(q931.Setup, false, setupUI("1001", newCallID(), netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, nil))
	m, _ := caller.expect(q931.ReleaseComplete)
	if m.CallRef != 43 || cause(t, m) != CauseInvalidCallRef {
		t.Fatalf("answer: call reference %d cause %v", m.CallRef, m)
	}
	caller.crv = 42
	caller.send(q931.Facility, false, answerUI(h225.H323UUPDUH323MessageBody_Facility, id, netip.AddrPort{}, nil))
	callee.expect(q931.Facility)
	callee.send(q931.Alerting, true, answerUI(h225.H323UUPDUH323MessageBody_Alerting, id, netip.AddrPort{}, nil))
	caller.expect(q931.Alerting)
}

// TestQuietCallKeptOpen: a call carries no Q.931 for longer than the
// listener's idle timeout and its connection stays open (Busy).
func TestQuietCallKeptOpen(t *testing.T) {
	p := startPortico(t, Config{})
	ln, err := p.srv.Listen(netip.AddrPortFrom(porticoOut, 0), connlimit.Config{Name: "quiet", HandshakeTimeout: 2 * time.Second, IdleTimeout: 100 * time.Millisecond}, connlimit.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.srv.Serve(ctx, ln, Outside); close(done) }()
	defer func() { cancel(); <-done }()
	calleeLn := routeTo(t, p)
	id := newCallID()
	caller, callee := placeCall(t, netip.MustParseAddrPort(ln.Addr().String()), calleeLn, id)
	callee.send(q931.Connect, true, answerUI(h225.H323UUPDUH323MessageBody_Connect, id, netip.AddrPort{}, nil))
	caller.expect(q931.Connect)
	time.Sleep(3 * time.Second) // past the first check (the handshake timeout), then many idle timeouts
	caller.send(q931.Facility, false, answerUI(h225.H323UUPDUH323MessageBody_Facility, id, netip.AddrPort{}, nil))
	callee.expect(q931.Facility)
}
