package sipedge

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/testpeer"
)

// wireTap relays datagrams between one client (sipp) and the edge and
// records, per Call-ID, when the client first sent a request and every
// final response the edge sent back: a measuring point on the wire, not
// a stand-in for a peer.
type wireTap struct {
	mu     sync.Mutex
	first  map[string]time.Time
	finals []tapFinal
	// bare503 counts 503s without a Retry-After.
	bare503 int
}

type tapFinal struct {
	code int
	age  time.Duration // since the client's first transmission
}

func startWireTap(t *testing.T, edge string) (*wireTap, string) {
	t.Helper()
	front := listenUDP(t, outsideIP)
	back := listenUDP(t, outsideIP)
	dst, err := net.ResolveUDPAddr("udp", edge)
	if err != nil {
		t.Fatal(err)
	}
	w := &wireTap{first: map[string]time.Time{}}
	var client net.Addr
	var cmu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client -> edge
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			cmu.Lock()
			client = from
			cmu.Unlock()
			if id := headerValue(buf[:n], "Call-ID", "i"); id != "" {
				w.mu.Lock()
				if _, ok := w.first[id]; !ok {
					w.first[id] = time.Now()
				}
				w.mu.Unlock()
			}
			back.WriteTo(buf[:n], dst)
		}
	}()
	go func() { // edge -> client
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, _, err := back.ReadFrom(buf)
			if err != nil {
				return
			}
			now := time.Now()
			if code := statusCode(buf[:n]); code >= 200 {
				id := headerValue(buf[:n], "Call-ID", "i")
				w.mu.Lock()
				sent, ok := w.first[id]
				if !ok {
					sent = now
				}
				w.finals = append(w.finals, tapFinal{code: code, age: now.Sub(sent)})
				if code == 503 && headerValue(buf[:n], "Retry-After", "Retry-After") == "" {
					w.bare503++
				}
				w.mu.Unlock()
			}
			cmu.Lock()
			c := client
			cmu.Unlock()
			if c != nil {
				front.WriteTo(buf[:n], c)
			}
		}
	}()
	t.Cleanup(func() { front.Close(); back.Close(); wg.Wait() })
	return w, front.LocalAddr().String()
}

func statusCode(b []byte) int {
	if !bytes.HasPrefix(b, []byte("SIP/2.0 ")) || len(b) < 11 {
		return 0
	}
	n, _ := strconv.Atoi(string(b[8:11]))
	return n
}

func headerValue(b []byte, long, short string) string {
	head, _, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		name, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, []byte(long)) || bytes.EqualFold(name, []byte(short)) {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}

// TestOverloadRefusesEarly drives REGISTERs from sipp far above what the
// edge and Kamailio behind it can register on this machine, and checks
// what a client sees: every final answer is a 200 or a 503 with
// Retry-After, none arrives after the client's Timer F (64*T1 of sipp's
// default T1, 500 ms), the edge refused some (so overload was reached)
// and registered others. Nothing here depends on how fast the edge is.
func TestOverloadRefusesEarly(t *testing.T) {
	if testing.Short() {
		t.Skip("needs sipp and kamailio")
	}
	k := startKamailio(t, 256)
	p := startPortico(t, Config{CallServers: []CallServer{{Address: k.addr.String(), Transport: "udp"}}, ProbeInterval: -1,
		NATBindingExpiry: time.Hour, Limits: Limits{MaxRegistrations: 1000000}})
	tap, front := startWireTap(t, p.extUDP.String())
	dir := sippDir(t)
	const n = 40000
	start := time.Now()
	// sipp ends when every REGISTER was answered or gave up (its seventh
	// retransmission, 19.5 s after the first, goes unanswered; bounded by
	// -timeout); the tap keeps listening one more T1*64 for a late answer.
	sipp := exec.Command(testpeer.Require(t, "sipp")[0], "-nostdin", "-timeout", "90s", "-sf", "overload_register.xml",
		"-i", outsideIP, "-p", freePort(t), "-buff_size", "4194304",
		"-r", "20000", "-rp", "1000", "-m", strconv.Itoa(n), "-l", strconv.Itoa(n), front)
	sipp.Dir = dir
	if out, err := sipp.CombinedOutput(); err != nil && sipp.ProcessState.ExitCode() != 1 {
		// Exit status 1 is "some calls failed": the refused ones.
		t.Fatalf("sipp: %v\n%s", err, out)
	}
	codes := tap.check(t, p, start, "REGISTER")
	if codes[200] == 0 {
		t.Error("no REGISTER registered under overload")
	}
	// Once the load is gone, the edge registers again.
	if res := newRawUA(t, outsideIP, "after").register(net.UDPAddrFromAddrPort(p.extUDP), 3600); res.StatusCode != 200 {
		t.Errorf("REGISTER after the overload answered %d, want 200", res.StatusCode)
	}
}

// check waits one Timer F (64*T1) after the load for a late answer, then
// asserts what the client saw of the load's requests (method): every
// final answer a 200 or a 503 with Retry-After, none after the client's
// timer, and some refused by the edge's overload bounds. It returns the
// final answers by status code.
func (w *wireTap) check(t *testing.T, p *portico, start time.Time, method string) map[int]int {
	t.Helper()
	timerF := 64 * sip.T1
	time.Sleep(timerF + 2*time.Second)
	w.mu.Lock()
	finals := append([]tapFinal(nil), w.finals...)
	sent, bare503 := len(w.first), w.bare503
	w.mu.Unlock()
	if bare503 > 0 {
		t.Errorf("%d 503 answers without Retry-After", bare503)
	}
	codes := map[int]int{}
	var late int
	var oldest time.Duration
	for _, f := range finals {
		codes[f.code]++
		oldest = max(oldest, f.age)
		if f.age > timerF {
			late++
		}
	}
	refused := testutil.ToFloat64(p.s.m.rejected.WithLabelValues(rejectInFlight)) + testutil.ToFloat64(p.s.m.rejected.WithLabelValues(rejectWaited))
	shed := testutil.ToFloat64(p.s.m.dropped.WithLabelValues(External, dropOverload))
	t.Logf("%d %ss sent in %v; finals %v; oldest answer %v; refused %v, shed %v, %d registrations held",
		sent, method, time.Since(start).Round(time.Second), codes, oldest.Round(time.Millisecond), refused, shed, len(p.s.Registrations()))
	for code, c := range codes {
		if code != 200 && code != 503 {
			t.Errorf("%d answers were %d, want only 200 or 503", c, code)
		}
	}
	if late > 0 {
		t.Errorf("%d final answers arrived after the client's timer (%v); the oldest after %v", late, timerF, oldest)
	}
	if codes[503] == 0 || refused == 0 {
		t.Errorf("no %s refused with 503 (metric %v): the load did not reach the edge's bound", method, refused)
	}
	return codes
}

// TestOverloadRefusesInvites offers guest calls from sipp (INVITE with
// SDP, then ACK and BYE at once; at most 30 calls open) far above what
// the edge handles under -race, with at most 10 INVITEs in flight, to a
// sipp UAS, and checks
// what the caller sees: every final answer a 200 or a 503 with
// Retry-After, none after the client's Timer B (64*T1), some calls
// refused and some connected, and the edge takes calls again afterwards.
func TestOverloadRefusesInvites(t *testing.T) {
	if testing.Short() {
		t.Skip("needs sipp")
	}
	// The UAS outlives the load and the wait for late answers.
	inside := insideIP + ":" + freePort(t)
	startSipp(t, t.TempDir(), "-timeout", "5m", "-sn", "uas", "-i", insideIP, "-p", strings.Split(inside, ":")[1], "-mp", freePort(t))
	cfg := guestConfig(CallServer{Address: inside, Transport: "udp"})
	cfg.Overload = Overload{MaxInFlight: 10}
	p := startPortico(t, cfg, withRelayPorts(t, 500))
	tap, front := startWireTap(t, p.extUDP.String())
	dir := sippDir(t)
	const n = 3000
	start := time.Now()
	// Every call ends by its Timer B (32 s; an INVITE's retransmissions,
	// 63.5 s); the context bounds sipp should one not.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sipp := exec.CommandContext(ctx, testpeer.Require(t, "sipp")[0], "-nostdin", "-sf", "overload_call.xml", "-s", "1234",
		"-i", outsideIP, "-p", freePort(t), "-mp", freePort(t), "-buff_size", "4194304", "-trace_err",
		"-r", "1000", "-m", strconv.Itoa(n), "-l", "30", front)
	sipp.Dir = dir
	if out, err := sipp.CombinedOutput(); err != nil && sipp.ProcessState.ExitCode() != 1 {
		t.Fatalf("sipp: %v\n%s", err, out[max(0, len(out)-4000):])
	}
	if errs, _ := filepath.Glob(filepath.Join(dir, "*_errors.log")); len(errs) > 0 {
		if b, err := os.ReadFile(errs[0]); err == nil {
			t.Logf("sipp's errors (the last 2,000 bytes):\n%s", b[max(0, len(b)-2000):])
		}
	}
	codes := tap.check(t, p, start, "INVITE")
	if codes[200] == 0 {
		t.Error("no call connected under overload")
	}
	// Once the load is gone, the edge takes calls again.
	g := newRawUA(t, outsideIP, "after")
	if res := g.invite(udpAddr(p.extUDP.String()), "sip:1234@portico.test", g.sdp(""), ""); res == nil || res.StatusCode != 200 {
		t.Errorf("INVITE after the overload answered %v, want 200", res)
	}
}

// withRelayPorts gives the edge a relay of its own with n ports on each
// side (the harness's range holds some 25 calls), closed at the end.
func withRelayPorts(t *testing.T, n int) func(*Server) {
	lo, _ := mediaPorts()
	for range 2*n/100 - 1 {
		mediaPorts() // consecutive blocks: lo..lo+2n-1 is this test's
	}
	relay, err := media.New(media.Config{Interfaces: map[string]media.InterfaceConfig{
		External: {Addr: netip.MustParseAddr(extIP), PortMin: lo, PortMax: lo + n - 1},
		Internal: {Addr: netip.MustParseAddr(intIP), PortMin: lo + n, PortMax: lo + 2*n - 1},
	}, Latching: media.LatchNAT}, media.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go relay.Run(ctx)
	t.Cleanup(func() { cancel(); relay.Close() })
	return func(s *Server) { s.deps.Media = relay }
}

func TestShedDatagram(t *testing.T) {
	var a admission
	o := Overload{MaxQueued: 2}
	reinvite := []byte("INVITE sip:a@b SIP/2.0\r\nVia: x\r\nTo: <sip:a@b>;tag=9\r\n\r\n")
	invite := []byte("INVITE sip:a@b SIP/2.0\r\nVia: x\r\nt: <sip:a@b>\r\n\r\nv=0;tag=1\r\n")
	register := []byte("REGISTER sip:b SIP/2.0\r\n\r\n")
	bye := []byte("BYE sip:a@b SIP/2.0\r\n\r\n")
	for _, b := range [][]byte{reinvite, invite, register, bye} {
		if a.shedDatagram(o, b) {
			t.Errorf("shed %q with nothing queued", b)
		}
	}
	a.queued.Store(2)
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{{"re-INVITE", reinvite, false}, {"INVITE", invite, true}, {"REGISTER", register, true}, {"BYE", bye, false}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.shedDatagram(o, tc.b); got != tc.want {
				t.Errorf("shed = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAdmissionQueueDrains checks that the queue of stamped requests
// counts a retransmission once, empties as handlers take their stamps, and
// drains by itself while every new datagram is shed (nothing stamped).
func TestAdmissionQueueDrains(t *testing.T) {
	reg := func(branch string) *sip.Request {
		r := sip.NewRequest(sip.REGISTER, sip.Uri{Host: "portico.test"})
		params := sip.NewParams()
		params.Add("branch", branch)
		r.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: 5060, Params: params})
		return r
	}
	var a admission
	const wait = time.Millisecond
	o := Overload{MaxQueued: 2, MaxWait: wait}
	a.arrived(reg("z9hG4bK1"), time.Hour)
	a.arrived(reg("z9hG4bK1"), time.Hour) // its retransmission
	if q := a.queued.Load(); q != 1 {
		t.Fatalf("queued = %d after a request and its retransmission, want 1", q)
	}
	a.take(reg("z9hG4bK1"), time.Now())
	if q := a.queued.Load(); q != 0 {
		t.Fatalf("queued = %d after its handler took it, want 0", q)
	}
	a.arrived(reg("z9hG4bK2"), time.Hour)
	a.arrived(reg("z9hG4bK3"), time.Hour)
	data := []byte("REGISTER sip:portico.test SIP/2.0\r\n\r\n")
	a.rotated = time.Now() // the generation is fresh: the queue is full
	if !a.shedDatagram(Overload{MaxQueued: 2, MaxWait: time.Hour}, data) {
		t.Fatal("a REGISTER was not shed with the queue full")
	}
	// Two generations later the queue is empty though nothing arrived.
	time.Sleep(wait)
	a.shedDatagram(o, data)
	time.Sleep(wait)
	if a.shedDatagram(o, data) {
		t.Errorf("still shedding after two generations without arrivals (queued %d)", a.queued.Load())
	}
}

// TestAdmissionGauges checks that the in-flight and queued gauges follow
// the admission's counts: a request stamped on arrival is queued, taken
// and admitted it is in flight, done it is neither.
func TestAdmissionGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	var a admission
	a.register(reg)
	gauge := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("%s not exported", name)
		return 0
	}
	r := sip.NewRequest(sip.REGISTER, sip.Uri{Host: "portico.test"})
	params := sip.NewParams()
	params.Add("branch", "z9hG4bKg")
	r.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: 5060, Params: params})
	o := Overload{MaxInFlight: 1, MaxWait: time.Hour}
	steps := []struct {
		name             string
		do               func()
		queued, inFlight float64
	}{
		{"arrived", func() { a.arrived(r, time.Hour) }, 1, 0},
		{"admitted", func() {
			now := time.Now()
			if why := a.refuse(o, a.take(r, now), now); why != "" {
				t.Fatalf("refused: %s", why)
			}
		}, 0, 1},
		{"done", a.done, 0, 0},
	}
	for _, st := range steps {
		st.do()
		if q, f := gauge("portico_sip_overload_queued"), gauge("portico_sip_overload_in_flight"); q != st.queued || f != st.inFlight {
			t.Errorf("%s: queued %v, in flight %v; want %v, %v", st.name, q, f, st.queued, st.inFlight)
		}
	}
}
