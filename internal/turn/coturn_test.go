package turn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// selfSigned makes a certificate for 127.0.0.1 and writes it as PEM into
// dir, for the clients that want files.
func selfSigned(t testing.TB, dir string) (*tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "portico-turn-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certFile
}

type runningServer struct {
	*Server
	port, tlsPort int
	reg           *prometheus.Registry
}

// runServer starts a Server with Run on free loopback ports: UDP and TCP on
// one port, TLS and DTLS on another.
func runServer(t testing.TB, cfg Config) *runningServer {
	t.Helper()
	cert, _ := selfSigned(t, t.TempDir())
	port, tlsPort := testpeer.FreePort(t), testpeer.FreePort(t)
	cfg.Listen = Listen{
		UDP:  []string{"127.0.0.1:" + strconv.Itoa(port)},
		TCP:  []string{"127.0.0.1:" + strconv.Itoa(port)},
		TLS:  []string{"127.0.0.1:" + strconv.Itoa(tlsPort)},
		DTLS: []string{"127.0.0.1:" + strconv.Itoa(tlsPort)},
	}
	users := NewMemoryUsers()
	users.Set(cfg.withDefaults().Realm, testUser, testPass)
	reg := prometheus.NewRegistry()
	s, err := New(cfg, Deps{
		Logger: testLogger(t), Registerer: reg, Users: users,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitServing(t, s)
	return &runningServer{Server: s, port: port, tlsPort: tlsPort, reg: reg}
}

// startPeer runs turnutils_peer, coturn's UDP echo peer, on loopback.
func startPeer(t testing.TB, bin string) int {
	t.Helper()
	port := testpeer.FreePort(t)
	cmd := exec.Command(bin, "-L", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// It binds at once; give it a moment to be ready.
	waitUDPBound(t, port)
	return port
}

// waitUDPBound waits until a UDP port on 127.0.0.1 can no longer be bound.
func waitUDPBound(t testing.TB, port int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		c, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("peer did not bind port %d", port)
}

var (
	lostRe  = regexp.MustCompile(`Total lost packets (\d+) \(([\d.]+)%\)`)
	sentRe  = regexp.MustCompile(`Total transmit time is \d+`)
	statsRe = regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)
)

type uclientResult struct {
	out        string
	sent, recv int
	lost       int
}

// runUclient runs turnutils_uclient and parses its totals.
func runUclient(t testing.TB, bin string, args ...string) (uclientResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	r := uclientResult{out: string(out), lost: -1}
	if m := lostRe.FindStringSubmatch(r.out); m != nil {
		r.lost, _ = strconv.Atoi(m[1])
	}
	if ms := statsRe.FindAllStringSubmatch(r.out, -1); len(ms) > 0 {
		m := ms[len(ms)-1]
		r.sent, _ = strconv.Atoi(m[1])
		r.recv, _ = strconv.Atoi(m[2])
	}
	if err != nil {
		return r, fmt.Errorf("uclient %v: %w", args, err)
	}
	if !sentRe.MatchString(r.out) {
		return r, fmt.Errorf("uclient %v finished without totals", args)
	}
	return r, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestCoturnClients relays coturn's turnutils_uclient traffic through
// Portico over every client transport, echoed by turnutils_peer, and
// demands zero loss.
func TestCoturnClients(t *testing.T) {
	bins := testpeer.Require(t, "turnutils_uclient", "turnutils_peer")
	uclient, peerBin := bins[0], bins[1]
	cfg := testConfig()
	cfg.Quota = Quota{PerUser: -1, Total: -1}
	cfg.RateLimit = RateLimit{PerSecond: -1}
	cfg.Peers.RelayToRelay = true // the client-to-client (-y) cases
	s := runServer(t, cfg)
	peerPort := startPeer(t, peerBin)

	const clients, messages = 4, 50
	common := []string{"-e", "127.0.0.1", "-r", strconv.Itoa(peerPort), "-n", strconv.Itoa(messages), "-m", strconv.Itoa(clients), "-l", "172", "-z", "5"}
	tests := []struct {
		name  string
		flags []string
		port  int
		rest  bool
	}{
		{name: "udp", port: s.port},
		{name: "tcp", flags: []string{"-t"}, port: s.port},
		{name: "tls", flags: []string{"-t", "-S"}, port: s.tlsPort},
		{name: "dtls", flags: []string{"-S"}, port: s.tlsPort},
		{name: "udp client-to-client", flags: []string{"-y"}, port: s.port},
		{name: "tcp client-to-client", flags: []string{"-t", "-y"}, port: s.port},
		{name: "tcp relay rfc6062", flags: []string{"-T"}, port: s.port},
		{name: "udp rest credentials", port: s.port, rest: true},
		{name: "channel-less send indications", flags: []string{"-s"}, port: s.port},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{}, tc.flags...)
			if tc.rest {
				args = append(args, "-W", testSecret, "-u", "carol")
			} else {
				args = append(args, "-u", testUser, "-w", testPass)
			}
			args = append(args, common...)
			args = append(args, "-p", strconv.Itoa(tc.port), "127.0.0.1")
			before := testutil.ToFloat64(s.m.allocationsTotal)
			r, err := runUclient(t, uclient, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, tail(r.out, 30))
			}
			if r.lost != 0 || r.sent == 0 || r.recv < r.sent {
				t.Fatalf("lost %d, sent %d, received %d\n%s", r.lost, r.sent, r.recv, tail(r.out, 30))
			}
			if got := testutil.ToFloat64(s.m.allocationsTotal) - before; got < clients {
				t.Errorf("%v allocations made, want at least %d", got, clients)
			}
			t.Logf("sent %d received %d lost %d", r.sent, r.recv, r.lost)
		})
	}
}

// TestCoturnStunclient asks Portico for a binding with turnutils_stunclient.
func TestCoturnStunclient(t *testing.T) {
	bin := testpeer.Require(t, "turnutils_stunclient")[0]
	s := runServer(t, testConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-p", strconv.Itoa(s.port), "127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("stunclient: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`UDP reflexive addr: 127\.0\.0\.1:\d+`).Match(out) {
		t.Fatalf("no reflexive address in:\n%s", out)
	}
}

// TestCoturnRefusals checks that uclient gets nothing relayed with a wrong
// password, with expired REST credentials, towards a denied peer, towards
// Portico's own listeners, or to another allocation (client-to-client).
func TestCoturnRefusals(t *testing.T) {
	bins := testpeer.Require(t, "turnutils_uclient", "turnutils_peer")
	uclient, peerBin := bins[0], bins[1]
	peerPort := startPeer(t, peerBin)

	allowLoopback := testConfig()
	s := runServer(t, allowLoopback)
	// The default policy denies loopback peers: turnutils_peer on 127.0.0.1
	// stands for a LAN host. Nothing leaves loopback either way.
	denyCfg := testConfig()
	denyCfg.Peers = PeerPolicy{}
	denied := runServer(t, denyCfg)

	expUser, expPass := RESTCredentials(testSecret, "carol", time.Now().Add(-10*time.Second))
	good := []string{"-u", testUser, "-w", testPass}
	peersDenied := func(s *runningServer) float64 { return testutil.ToFloat64(s.m.peersDenied) }
	tests := []struct {
		name    string
		s       *runningServer
		auth    []string
		flags   []string
		peer    int // default: turnutils_peer
		counter func(*runningServer) float64
	}{
		{"wrong password", s, []string{"-u", testUser, "-w", "wrong"}, nil, 0, func(s *runningServer) float64 { return testutil.ToFloat64(s.m.authIntegrity) }},
		{"wrong rest secret", s, []string{"-W", "not-the-shared-secret", "-u", "carol"}, nil, 0, func(s *runningServer) float64 { return testutil.ToFloat64(s.m.authIntegrity) }},
		{"expired rest", s, []string{"-u", expUser, "-w", expPass}, nil, 0, func(s *runningServer) float64 { return testutil.ToFloat64(s.m.authExpired) }},
		{"denied peer", denied, good, nil, 0, peersDenied},
		// Portico's own listeners, though loopback peers are allowed.
		{"own udp listener", s, good, nil, s.port, peersDenied},
		{"own tls listener over tcp", s, good, []string{"-t"}, s.tlsPort, peersDenied},
		{"own listener from a tcp allocation", s, good, []string{"-T"}, s.port, peersDenied},
		{"relay to relay", s, good, []string{"-y"}, 0, peersDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.counter(tc.s)
			peer := peerPort
			if tc.peer != 0 {
				peer = tc.peer
			}
			args := append(append(append([]string{}, tc.flags...), tc.auth...), "-e", "127.0.0.1", "-r", strconv.Itoa(peer), "-n", "5", "-m", "1", "-c", "-p", strconv.Itoa(tc.s.port), "127.0.0.1")
			r, err := runUclient(t, uclient, args...)
			if err == nil && r.recv > 0 {
				t.Fatalf("uclient got %d messages relayed\n%s", r.recv, tail(r.out, 20))
			}
			if tc.counter(tc.s) <= before {
				t.Errorf("refusal not counted (err %v)\n%s", err, tail(r.out, 20))
			}
			if got := testutil.ToFloat64(tc.s.m.pktsToPeer); got != 0 {
				t.Errorf("%v packets relayed to peers", got)
			}
		})
	}
}
