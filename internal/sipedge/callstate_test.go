package sipedge

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/media"
)

// guestConfig admits guests to 1000-1999 through the given call servers.
func guestConfig(cs ...CallServer) Config {
	return Config{CallServers: cs, ProbeInterval: -1, Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}}}
}

// guestCall has g call 1234 through p and cs answer it with tag.
func answeredGuestCall(t *testing.T, p *portico, g, cs *rawUA, tag string) *sip.Request {
	t.Helper()
	done := make(chan *sip.Response, 1)
	go func() { done <- g.invite(udpAddr(p.extUDP.String()), "sip:1234@portico.test", g.sdp(""), "") }()
	inv := cs.expect("INVITE")
	cs.reply(inv, 200, "OK", tag, cs.sdp(""))
	if r := <-done; r.StatusCode != 200 {
		t.Fatalf("call answered %d", r.StatusCode)
	}
	cs.expect("ACK")
	return inv
}

// finalFor waits for u's final response to the request with CSeq seq.
func finalFor(u *rawUA, method string, seq int) *sip.Response {
	u.t.Helper()
	return u.next(fmt.Sprintf("final response to %s %d", method, seq), func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode >= 200 && r.CSeq() != nil && string(r.CSeq().MethodName) == method && int(r.CSeq().SeqNo) == seq
	}).(*sip.Response)
}

// TestReinviteCrossingBye: the callee hangs up while Portico relays a
// re-INVITE to it, and then answers the re-INVITE with 200 and SDP. The
// late answer must not anchor media for the ended call: the relay holds no
// session afterwards, and the caller's re-INVITE gets 487.
func TestReinviteCrossingBye(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	p := startPortico(t, guestConfig(c))
	g := newRawUA(t, outsideIP, "guest")
	inv := answeredGuestCall(t, p, g, cs, "cs1")

	g.send(g.dest, g.request("INVITE", g.target, g.to+";tag="+g.rtag, "", g.sdp("")))
	seq := g.cseq
	re := cs.expect("INVITE")
	if r := cs.byeAsCallee(inv, "cs1"); r.StatusCode != 200 {
		t.Fatalf("callee BYE answered %d", r.StatusCode)
	}
	g.reply(g.expect("BYE"), 200, "OK", "", "")
	p.hist.waitCalls(t, 1)

	cs.reply(re, 200, "OK", "cs1", cs.sdp(""))
	if r := finalFor(g, "INVITE", seq); r.StatusCode != 487 {
		t.Errorf("re-INVITE crossing the BYE answered %d to the caller, want 487", r.StatusCode)
	}
	if ss := p.relay.Sessions(); len(ss) != 0 {
		t.Fatalf("relay holds %d sessions after the call ended: %+v", len(ss), ss)
	}
}

// gateMedia lets the test see how many releases run at once: Release waits
// until want releases are in progress together (a barrier, passed once),
// and records the most seen.
type gateMedia struct {
	Media
	want int

	mu      sync.Mutex
	cur     int
	most    int
	reached chan struct{}
}

func (g *gateMedia) Release(id media.SessionID) (media.SessionStats, error) {
	g.mu.Lock()
	g.cur++
	g.most = max(g.most, g.cur)
	if g.cur == g.want {
		select {
		case <-g.reached:
		default:
			close(g.reached)
		}
	}
	g.mu.Unlock()
	<-g.reached
	st, err := g.Media.Release(id)
	g.mu.Lock()
	g.cur--
	g.mu.Unlock()
	return st, err
}

func (g *gateMedia) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.reached:
	default:
		close(g.reached)
	}
}

// TestMediaTimeoutHangups: the relay's timeout callback (MediaTimeout)
// returns at once, and the hang-ups of dead calls, whose far ends never
// answer BYE, run side by side, at most Server.hangups.max at a time; every
// call ends with disposition "media timeout". The media gate holds each
// release until two run together, so hang-ups made one after another (or
// inside the callback) never get past it.
func TestMediaTimeoutHangups(t *testing.T) {
	const calls, workers = 4, 2
	cs, c := fakeCallServer(t, "cs")
	var gate *gateMedia
	p := startPortico(t, guestConfig(c), func(s *Server) {
		gate = &gateMedia{Media: s.deps.Media, want: workers, reached: make(chan struct{})}
		s.deps.Media = gate
		s.hangups.max = workers
	})
	t.Cleanup(gate.open) // before Close runs (cleanups run last first)
	var uas []*rawUA
	for i := range calls {
		g := newRawUA(t, outsideIP, fmt.Sprintf("g%d", i))
		answeredGuestCall(t, p, g, cs, fmt.Sprintf("cs%d", i))
		uas = append(uas, g)
	}
	returned := make(chan error, 1)
	go func() {
		var err error
		for _, ci := range p.s.Calls() {
			err = errors.Join(err, p.s.MediaTimeout(ci.ID))
		}
		returned <- err
	}()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("MediaTimeout blocked: the relay's goroutine would stall")
	}
	// Nobody answers a BYE; the calls end all the same.
	recs := p.hist.waitCalls(t, calls)
	for _, r := range recs {
		if r.Disposition != "media timeout" || r.EndedBy != endedByPortico {
			t.Errorf("call record = %+v", r)
		}
	}
	for _, g := range uas {
		g.expect("BYE")
	}
	for range calls {
		cs.expect("BYE")
	}
	gate.mu.Lock()
	most := gate.most
	gate.mu.Unlock()
	if most != workers {
		t.Errorf("at most %d hang-ups ran together, want %d", most, workers)
	}
}

// unackedAnswer places a guest call from g that cs answers, and returns
// the 2xx g received; g sends no ACK.
func unackedAnswer(t *testing.T, p *portico, g, cs *rawUA, callID, tag string) *sip.Response {
	t.Helper()
	g.callID, g.tag = callID, tag
	g.ruri, g.to, g.dest = "sip:1234@portico.test", "<sip:1234@portico.test>", udpAddr(p.extUDP.String())
	g.send(g.dest, g.request("INVITE", g.ruri, g.to, "", g.sdp("")))
	cs.reply(cs.expect("INVITE"), 200, "OK", "cs1", cs.sdp(""))
	res := g.final("INVITE")
	if res.StatusCode != 200 {
		t.Fatalf("call answered %d", res.StatusCode)
	}
	cs.expect("ACK")
	return res
}

// fastT1 is the T1 of the edges fastUnackedCall starts: the 2xx's 64*T1
// deadline is 1.28 s.
const fastT1 = 20 * time.Millisecond

// fastUnackedCall starts an edge with T1 fastT1 and a fake call server
// cs, and has a guest g (user) place a call that cs answers and g does
// not acknowledge; res is the 2xx g received.
func fastUnackedCall(t *testing.T, user, callID, tag string) (p *portico, g, cs *rawUA, res *sip.Response) {
	t.Helper()
	cs, c := fakeCallServer(t, "cs")
	p = startPortico(t, guestConfig(c), func(s *Server) { s.t1 = fastT1 })
	g = newRawUA(t, outsideIP, user)
	return p, g, cs, unackedAnswer(t, p, g, cs, callID, tag)
}

// TestUnackedAnswerEndsCall: a caller that never acknowledges the 2xx has
// its call ended after 64*T1 of retransmissions (RFC 3261 section
// 13.3.1.4): BYE both ways, disposition "no ACK". A call answered and
// acknowledged before it, whose 64*T1 ran out first, stays up.
func TestUnackedAnswerEndsCall(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	p := startPortico(t, guestConfig(c), func(s *Server) { s.t1 = 20 * time.Millisecond })
	acked := newRawUA(t, outsideIP, "acked")
	answeredGuestCall(t, p, acked, cs, "cs0")
	g := newRawUA(t, outsideIP, "guest")
	unackedAnswer(t, p, g, cs, "noack-1", "tna")
	// The caller sends no ACK.
	cs.reply(cs.expect("BYE"), 200, "OK", "", "")
	g.reply(g.expect("BYE"), 200, "OK", "", "")
	rec := p.hist.waitCalls(t, 1)[0]
	if rec.Disposition != dispNoACK || rec.EndedBy != endedByPortico || rec.AnsweredAt.IsZero() {
		t.Errorf("call record = %+v, want disposition %q by portico", rec, dispNoACK)
	}
	if calls := p.s.Calls(); len(calls) != 1 || calls[0].From != "sip:acked@portico.test" {
		t.Errorf("Calls() = %+v, want the acknowledged call only", calls)
	}
}

// TestAnswerRetransmittedUntilACK: over UDP Portico re-sends the 2xx it
// sent the caller until the caller's ACK arrives (RFC 3261 section
// 13.3.1.4); an ACK after retransmissions keeps the call up past 64*T1,
// and the caller's BYE ends it as the caller's.
func TestAnswerRetransmittedUntilACK(t *testing.T) {
	p, g, cs, first := fastUnackedCall(t, "late", "lateack-1", "tla")
	t1 := fastT1
	for i := range 2 {
		again := g.final("INVITE")
		if again.StatusCode != 200 || again.String() != first.String() {
			t.Fatalf("retransmission %d differs from the 2xx:\n%s\nfirst:\n%s", i+1, again, first)
		}
	}
	g.ackFor(first)
	time.Sleep(64 * t1) // past the deadline an unacknowledged 2xx would have had
	if calls := p.s.Calls(); len(calls) != 1 {
		t.Fatalf("Calls() = %+v after the late ACK, want the call", calls)
	}
	g.send(g.dest, g.request("BYE", g.target, g.to+";tag="+g.rtag, "", ""))
	cs.reply(cs.expect("BYE"), 200, "OK", "", "")
	if r := g.final("BYE"); r.StatusCode != 200 {
		t.Fatalf("BYE answered %d", r.StatusCode)
	}
	rec := p.hist.waitCalls(t, 1)[0]
	if rec.Disposition == dispNoACK || rec.EndedBy != endedByCaller {
		t.Errorf("call record = %+v, want ended by the caller", rec)
	}
}

// TestCallServerICMPFailover: the first call server is a closed port, which
// answers the INVITE with ICMP port unreachable. The call moves on to the
// second server at once, well before the failover timer (an hour here) or
// the transaction timer would, and the first is marked down.
func TestCallServerICMPFailover(t *testing.T) {
	dead := CallServer{Address: kamIP + ":" + freePort(t), Transport: "udp", Priority: 0}
	cs, live := fakeCallServer(t, "cs")
	live.Priority = 1
	cfg := guestConfig(dead, live)
	cfg.FailoverTimeout = time.Hour
	p := startPortico(t, cfg)
	g := newRawUA(t, outsideIP, "guest")
	answeredGuestCall(t, p, g, cs, "cs1")
	info := p.s.CallServers()
	if len(info) != 2 || info[0].Address != dead.Address || info[0].Up || !info[1].Up {
		t.Errorf("CallServers() = %+v, want %s down and %s up", info, dead.Address, live.Address)
	}
}

// TestProvisionalOrder: an inside sipp UAS answers every call with 180 and
// 200 back to back; every caller must see the 180 before the 200 (the
// scenario fails a call whose 180 is missing).
func TestProvisionalOrder(t *testing.T) {
	inside := startSippUAS(t)
	p := startPortico(t, guestConfig(CallServer{Address: inside, Transport: "udp"}))
	r := startSipp(t, sippDir(t), "-sf", "ring_call.xml", "-s", "1234", "-i", outsideIP, "-p", freePort(t), "-mp", freePort(t),
		"-m", "300", "-r", "100", "-l", "10", p.extUDP.String())
	r.wait(t, "ring_call")
	p.hist.waitCalls(t, 300)
}

// sipedgeGoroutines returns the stacks of goroutines running the server's
// or a call's code.
func sipedgeGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sipedge.startPorticoAt.func") {
			continue // the harness's Serve goroutine: the test's own
		}
		if strings.Contains(g, "internal/sipedge.(*call)") || strings.Contains(g, "internal/sipedge.(*Server)") {
			out = append(out, g)
		}
	}
	return out
}

// TestCloseWaitsForCallWork: Close cancels and waits for the work calls
// started: here a BYE to a caller that never answers it and an INVITE to a
// callee that never answers it. Afterwards no goroutine runs sipedge code.
func TestCloseWaitsForCallWork(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	p := startPortico(t, guestConfig(c))
	g := newRawUA(t, outsideIP, "guest")
	inv := answeredGuestCall(t, p, g, cs, "cs1")
	if r := cs.byeAsCallee(inv, "cs1"); r.StatusCode != 200 {
		t.Fatalf("callee BYE answered %d", r.StatusCode)
	}
	g.expect("BYE") // never answered
	ringing := newRawUA(t, outsideIP, "ringing")
	ringing.callID, ringing.tag = "ringing-1", "tr"
	ringing.send(udpAddr(p.extUDP.String()), ringing.request("INVITE", "sip:1235@portico.test", "<sip:1235@portico.test>", "", ringing.sdp("")))
	cs.expect("INVITE") // never answered
	p.s.Close()
	// Both calls ended before Close returned: the ringing one when its
	// INVITE was cancelled, on the goroutine Close waited for.
	if recs, _ := p.hist.snapshot(); len(recs) != 2 {
		t.Errorf("%d call records when Close returned, want 2: %+v", len(recs), recs)
	}
	// A goroutine Close waited for may still be on its way out: inside
	// its final wg.Done (which woke Close) or returning from the frame
	// that deferred it. Those are given time to vanish; any other sipedge
	// goroutine is work Close did not wait for and fails the test at once.
	for deadline := time.Now().Add(10 * time.Second); ; runtime.Gosched() {
		gs := sipedgeGoroutines()
		if len(gs) == 0 {
			return
		}
		for _, g := range gs {
			if !exiting(g) {
				t.Fatalf("goroutine still runs sipedge code after Close:\n%s", g)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines past their wg.Done never exited:\n%s", len(gs), strings.Join(gs, "\n\n"))
		}
	}
}

// exiting reports whether a goroutine's stack is that of a tracked
// goroutine whose work has ended: its only sipedge frame is the one that
// deferred wg.Done, with nothing above it but that Done (or the runtime),
// and when not inside Done it is not blocked either.
func exiting(stack string) bool {
	lines := strings.Split(stack, "\n")
	if len(lines) == 0 {
		return false
	}
	header := lines[0] // goroutine N [state]:
	var frames []string
	for _, l := range lines[1:] {
		if l != "" && !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "created by ") {
			frames = append(frames, l)
		}
	}
	i, inDone := 0, false
	for ; i < len(frames); i++ {
		f := frames[i]
		if strings.HasPrefix(f, "sync.(*WaitGroup).Done(") {
			inDone = true
		}
		if !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "sync.") && !strings.HasPrefix(f, "internal/") {
			break
		}
	}
	if i == len(frames) || !strings.Contains(frames[i], "/internal/sipedge.") {
		return false
	}
	for _, f := range frames[i+1:] {
		if strings.Contains(f, "/internal/sipedge.") {
			return false // a deeper sipedge frame: work still under way
		}
	}
	return inDone || strings.Contains(header, "[runnable") || strings.Contains(header, "[running")
}

// TestByeBeforeAck: the caller's ACK of the 2xx and its BYE leave one
// after the other, and the edge may handle them in either order (each
// message is handled on its own goroutine). Sent BYE first, then the
// ACK: the call ends once, as the caller's, with one history row and its
// relay session released; the late ACK starts nothing, and no "no ACK"
// hang-up follows at 64*T1.
func TestByeBeforeAck(t *testing.T) {
	p, g, cs, res := fastUnackedCall(t, "hasty", "byefirst-1", "tbf")
	t1 := fastT1
	g.rtag, _ = res.To().Params.Get("tag")
	g.target = res.Contact().Address.String()
	g.send(g.dest, g.request("BYE", g.target, g.to+";tag="+g.rtag, "", ""))
	g.send(g.dest, g.ackText(res.CSeq().SeqNo))
	cs.reply(cs.expect("BYE"), 200, "OK", "", "")
	if r := g.final("BYE"); r.StatusCode != 200 {
		t.Fatalf("BYE answered %d", r.StatusCode)
	}
	rec := p.hist.waitCalls(t, 1)[0]
	if rec.EndedBy != endedByCaller || rec.Disposition == dispNoACK || rec.AnsweredAt.IsZero() {
		t.Errorf("call record = %+v, want answered and ended by the caller", rec)
	}
	time.Sleep(64*t1 + 4*sip.T2/10) // past the 2xx's deadline, with room for a late firing
	if n := p.hist.count(); n != 1 {
		t.Errorf("%d history rows, want 1", n)
	}
	for _, u := range []*rawUA{g, cs} {
		for len(u.inbox) > 0 {
			if m := <-u.inbox; isRequest(m, "BYE") {
				t.Errorf("%s got a BYE after the call ended:\n%s", u.user, m)
			}
		}
	}
	if calls := p.s.Calls(); len(calls) != 0 {
		t.Errorf("Calls() = %+v, want none", calls)
	}
	if ss := p.relay.Sessions(); len(ss) != 0 {
		t.Errorf("%d relay sessions held, want 0", len(ss))
	}
}

func isRequest(m sip.Message, method string) bool {
	r, ok := m.(*sip.Request)
	return ok && string(r.Method) == method
}
