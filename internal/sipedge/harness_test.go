package sipedge

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/certs/certtest"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/testpeer"
)

// Loopback addresses playing the network: Portico's external and internal
// interfaces, the inside call server, inside endpoints; outside endpoints
// use 127.0.0.1.
const (
	extIP     = "127.0.0.2"
	intIP     = "127.0.0.3"
	kamIP     = "127.0.0.4"
	insideIP  = "127.0.0.5"
	outsideIP = "127.0.0.1"
	probeIP   = "127.0.0.10" // waitServed's OPTIONS
)

// insideAddrs are strings that must never appear in anything sent outside.
var insideAddrs = []string{intIP, kamIP, insideIP}

// memHistory records history in memory.
type memHistory struct {
	mu    sync.Mutex
	calls []store.CallRecord
	regs  []store.RegistrationEvent
}

func (h *memHistory) AddCall(_ context.Context, c store.CallRecord) error {
	h.mu.Lock()
	h.calls = append(h.calls, c)
	h.mu.Unlock()
	return nil
}

func (h *memHistory) AddRegistrationEvent(_ context.Context, r store.RegistrationEvent) error {
	h.mu.Lock()
	h.regs = append(h.regs, r)
	h.mu.Unlock()
	return nil
}

func (h *memHistory) snapshot() ([]store.CallRecord, []store.RegistrationEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]store.CallRecord(nil), h.calls...), append([]store.RegistrationEvent(nil), h.regs...)
}

func (h *memHistory) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

// waitCalls waits until n call records exist.
func (h *memHistory) waitCalls(t *testing.T, n int) []store.CallRecord {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, _ := h.snapshot()
		if len(c) >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d call records, have %d: %+v", n, len(c), c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tapConn records every datagram written to it: what Portico sends outside.
type tapConn struct {
	net.PacketConn
	mu   sync.Mutex
	sent [][]byte
}

func (c *tapConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	c.sent = append(c.sent, append([]byte(nil), b...))
	c.mu.Unlock()
	return c.PacketConn.WriteTo(b, addr)
}

func (c *tapConn) messages() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.sent...)
}

// tapListener records what is written on accepted stream connections.
type tapListener struct {
	net.Listener
	tap *tapConn
}

type tapStream struct {
	net.Conn
	tap *tapConn
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tapStream{Conn: c, tap: l.tap}, nil
}

func (c *tapStream) Write(b []byte) (int, error) {
	c.tap.mu.Lock()
	c.tap.sent = append(c.tap.sent, append([]byte(nil), b...))
	c.tap.mu.Unlock()
	return c.Conn.Write(b)
}

// assertNoInside fails if any captured message names an inside address.
func assertNoInside(t *testing.T, tap *tapConn, extra ...string) {
	t.Helper()
	msgs := tap.messages()
	if len(msgs) == 0 {
		t.Fatal("topology check: nothing captured")
	}
	for _, m := range msgs {
		for _, bad := range append(append([]string(nil), insideAddrs...), extra...) {
			if bytes.Contains(m, []byte(bad)) {
				t.Errorf("message sent outside names inside %q:\n%s", bad, m)
			}
		}
	}
	t.Logf("topology check: %d messages sent outside, none names an inside address", len(msgs))
}

type portico struct {
	s      *Server
	hist   *memHistory
	relay  *media.Relay
	tap    *tapConn
	extUDP netip.AddrPort
	extTCP netip.AddrPort
	extWS  netip.AddrPort
	extTLS netip.AddrPort
	portLo int
	portHi int
	ca     *certtest.CA
	intUDP netip.AddrPort
	logs   *bytes.Buffer
	cancel context.CancelFunc
	errc   chan error
	// stop ends the edge and its relay (once; the test's cleanup calls it).
	stop func()
	// crash closes the edge's UDP sockets and nothing else, as a node that
	// dies sends nothing more (no BYE, no history row); stop still runs.
	crash func()
}

// withPort is ip:0, or ip as given when it names a port already.
func withPort(ip string) string {
	if strings.Contains(ip, ":") {
		return ip
	}
	return ip + ":0"
}

func listenUDP(t testing.TB, ip string) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp", withPort(ip))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func listenTCP(t testing.TB, ip string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", withPort(ip))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var portBase struct {
	mu   sync.Mutex
	next int
}

// mediaPorts hands each test its own relay port range.
func mediaPorts() (int, int) {
	portBase.mu.Lock()
	defer portBase.mu.Unlock()
	if portBase.next == 0 {
		portBase.next = (os.Getpid() % 200) * 100
	}
	// Blocks of 100 in 20000-59999, wrapping around, so that a package of
	// many tests never runs past the last port or into other tests' ranges.
	lo := 20000 + portBase.next%40000
	portBase.next += 100
	return lo, lo + 99
}

// startPortico runs a SIP edge on 127.0.0.2 (external) and 127.0.0.3
// (internal) with a real media relay, tapping what it sends outside. opts
// adjust the server before it serves (test knobs such as T1).
func startPortico(t testing.TB, cfg Config, opts ...func(*Server)) *portico {
	t.Helper()
	return startPorticoAt(t, cfg, nil, opts...)
}

// startPorticoAt is startPortico; with at, its UDP listeners bind at's
// addresses (at stopped first: a node taking over another's addresses).
func startPorticoAt(t testing.TB, cfg Config, at *portico, opts ...func(*Server)) *portico {
	t.Helper()
	extUDPAt, intUDPAt := extIP, intIP
	if at != nil {
		extUDPAt, intUDPAt = at.extUDP.String(), at.intUDP.String()
	}
	lo, hi := mediaPorts()
	logs := &bytes.Buffer{}
	var lmu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: logs, mu: &lmu}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	relay, err := media.New(media.Config{Interfaces: map[string]media.InterfaceConfig{
		External: {Addr: netip.MustParseAddr(extIP), PortMin: lo, PortMax: lo + 49},
		Internal: {Addr: netip.MustParseAddr(intIP), PortMin: lo + 50, PortMax: hi},
	}, Latching: media.LatchNAT}, media.Deps{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go relay.Run(ctx)
	hist := &memHistory{}
	p := &portico{hist: hist, relay: relay, logs: logs, cancel: cancel, errc: make(chan error, 1), portLo: lo, portHi: hi}
	extUDP := listenUDP(t, extUDPAt)
	p.tap = &tapConn{PacketConn: extUDP}
	extTCP := listenTCP(t, extIP)
	extWS := listenTCP(t, extIP)
	extTLS := listenTCP(t, extIP)
	p.extTLS = netip.MustParseAddrPort(extTLS.Addr().String())
	p.ca = certtest.NewCA(t, "Portico test CA")
	leaf := p.ca.Issue(t, []string{"portico.test", extIP}, certtest.Options{})
	kp, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
	intUDP := listenUDP(t, intUDPAt)
	intTCP := listenTCP(t, intIP)
	p.extUDP = netip.MustParseAddrPort(extUDP.LocalAddr().String())
	p.extTCP = netip.MustParseAddrPort(extTCP.Addr().String())
	p.extWS = netip.MustParseAddrPort(extWS.Addr().String())
	p.intUDP = netip.MustParseAddrPort(intUDP.LocalAddr().String())
	if cfg.Listeners == nil {
		cfg.Listeners = []Listener{
			{Interface: External, Transport: "udp", Address: p.extUDP.String()},
			{Interface: External, Transport: "tcp", Address: p.extTCP.String()},
			{Interface: External, Transport: "ws", Address: p.extWS.String()},
			{Interface: External, Transport: "tls", Address: p.extTLS.String()},
			{Interface: Internal, Transport: "udp", Address: p.intUDP.String()},
			{Interface: Internal, Transport: "tcp", Address: intTCP.Addr().String()},
		}
	}
	if cfg.Domain == "" {
		cfg.Domain = "portico.test"
	}
	s, err := New(cfg, Deps{Logger: logger, Media: relay, History: hist, TLSConfig: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	p.s = s
	for _, o := range opts {
		o(s)
	}
	go func() {
		p.errc <- s.Serve(ctx, []BoundListener{
			{Interface: External, Transport: "udp", Packet: p.tap},
			{Interface: External, Transport: "tcp", Stream: &tapListener{Listener: extTCP, tap: p.tap}},
			{Interface: External, Transport: "ws", Stream: &tapListener{Listener: extWS, tap: p.tap}},
			{Interface: External, Transport: "tls", Stream: extTLS},
			{Interface: Internal, Transport: "udp", Packet: intUDP},
			{Interface: Internal, Transport: "tcp", Stream: intTCP},
		})
	}()
	p.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case <-p.errc:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
		s.Close()
		relay.Close()
		extUDP.Close() // the addresses are free for a node that takes over
		intUDP.Close()
	})
	p.crash = func() { extUDP.Close(); intUDP.Close() }
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			lmu.Lock()
			t.Logf("portico log:\n%s", logs.String())
			lmu.Unlock()
		}
	})
	waitServed(t, p.intUDP.String(), p.extUDP.String())
	return p
}

// waitServed waits until a SIP edge answers OPTIONS on each UDP address:
// an address is known before the transport reads, and a request relayed
// before the internal socket is in the transport's pool makes sipgo bind
// its port again ("address already in use").
func waitServed(t testing.TB, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		for i := 0; optionsPing(a) != nil; i++ {
			if i == 30 {
				t.Fatalf("no answer to OPTIONS on %s", a)
			}
		}
	}
}

// logTail logs the last n bytes of buf, written under mu, if t failed.
func logTail(t testing.TB, what string, mu *sync.Mutex, buf *bytes.Buffer, n int) {
	if !t.Failed() {
		return
	}
	mu.Lock()
	s := buf.String()
	mu.Unlock()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	t.Logf("%s:\n%s", what, s)
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// kamailio is a running inside call server.
type kamailio struct {
	addr netip.AddrPort
	out  *bytes.Buffer
}

// startKamailio runs Kamailio with test/testdata/kamailio/inside.cfg on
// 127.0.0.4 (UDP and TCP), with extra -A defines.
func startKamailio(t testing.TB, shm int, defines ...string) *kamailio {
	t.Helper()
	bin := testpeer.Require(t, "kamailio")[0]
	port := testpeer.FreePort(t)
	dir := t.TempDir()
	cfg, err := filepath.Abs("../../test/testdata/kamailio/inside.cfg")
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("%s:%d", kamIP, port)
	args := []string{"-DD", "-E", "-f", cfg, "-m", strconv.Itoa(shm), "-M", "8", "-Y", dir, "-P", filepath.Join(dir, "k.pid"),
		"-l", "udp:" + listen, "-l", "tcp:" + listen}
	for _, d := range defines {
		args = append(args, "-A", d)
	}
	cmd := exec.Command(bin, args...)
	out := &bytes.Buffer{}
	var mu sync.Mutex
	cmd.Stdout = &lockedWriter{w: out, mu: &mu}
	cmd.Stderr = cmd.Stdout
	// Its own process group, so that the forked workers go with it; they
	// hold the output pipe, hence the WaitDelay.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 3 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logTail(t, "kamailio output", &mu, out, 8000)
	})
	k := &kamailio{addr: netip.MustParseAddrPort(listen), out: out}
	// Ready when it answers OPTIONS.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if optionsPing(k.addr.String()) == nil {
			return k
		}
		select {
		case <-done:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("kamailio exited:\n%s", out.String())
		default:
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("kamailio did not answer OPTIONS")
	return nil
}

// optionsPing sends one OPTIONS and waits briefly for any response.
func optionsPing(addr string) error {
	// From an address of its own, so that the probe neither spends a
	// test's rate limit nor meets its ACL (both aim at outsideIP).
	dst, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(probeIP)}, dst)
	if err != nil {
		return err
	}
	defer c.Close()
	la := c.LocalAddr().String()
	msg := "OPTIONS sip:" + addr + " SIP/2.0\r\nVia: SIP/2.0/UDP " + la + ";branch=z9hG4bK" + strconv.Itoa(int(time.Now().UnixNano())) +
		"\r\nFrom: <sip:probe@" + la + ">;tag=1\r\nTo: <sip:" + addr + ">\r\nCall-ID: " + strconv.Itoa(int(time.Now().UnixNano())) +
		"\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	c.Write([]byte(msg))
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 2048)
	_, err = c.Read(buf)
	return err
}

// sipp runs one sipp process to completion (bounded) and returns its
// output; the process is killed by PID if the test ends first.
type sippRun struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
	err  error
}

func startSipp(t *testing.T, dir string, args ...string) *sippRun {
	t.Helper()
	bin := testpeer.Require(t, "sipp")[0]
	args = append([]string{"-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err", "-trace_msg"}, args...)
	r := &sippRun{out: &bytes.Buffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, args...)
	r.cmd.Dir = dir
	r.cmd.Stdout = &lockedWriter{w: r.out, mu: &r.mu}
	r.cmd.Stderr = r.cmd.Stdout
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait waits for sipp to exit and fails the test unless every call passed.
func (r *sippRun) wait(t *testing.T, name string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(45 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	if r.err != nil {
		r.mu.Lock()
		out := r.out.String()
		r.mu.Unlock()
		logs, _ := filepath.Glob(filepath.Join(r.cmd.Dir, "*_messages.log"))
		var msgs string
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			msgs += "\n== " + l + "\n" + string(b)
		}
		errs, _ := filepath.Glob(filepath.Join(r.cmd.Dir, "*_errors.log"))
		for _, l := range errs {
			b, _ := os.ReadFile(l)
			msgs += "\n== " + l + "\n" + string(b)
		}
		if len(out) > 3000 {
			out = out[len(out)-3000:]
		}
		t.Fatalf("sipp %s failed: %v\n%s%s", name, r.err, out, msgs)
	}
}

func sippDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	sc, _ := filepath.Abs("testdata/sipp")
	files, _ := os.ReadDir(sc)
	for _, f := range files {
		os.Symlink(filepath.Join(sc, f.Name()), filepath.Join(d, f.Name()))
	}
	os.Symlink("/usr/share/sip-tester", filepath.Join(d, "pcap"))
	return d
}

func freePort(t *testing.T) string { return strconv.Itoa(testpeer.FreePort(t)) }

func hasKind(evs []store.RegistrationEvent, aor, kind string) bool {
	for _, e := range evs {
		if e.Kind == kind && strings.Contains(e.AOR, aor) {
			return true
		}
	}
	return false
}

// nopMedia satisfies Media for tests that never reach media.
type nopMedia struct{}

func (nopMedia) Allocate(media.SessionConfig) (media.SessionID, []media.StreamInfo, error) {
	return 0, nil, fmt.Errorf("no media in this test")
}
func (nopMedia) Update(media.SessionID, []media.StreamConfig) ([]media.StreamInfo, error) {
	return nil, fmt.Errorf("no media in this test")
}
func (nopMedia) Release(media.SessionID) (media.SessionStats, error) {
	return media.SessionStats{}, nil
}
