package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

var lostRe = regexp.MustCompile(`Total lost packets (\d+) \(([\d.]+)%\)`)

// uclient runs coturn's turnutils_uclient and returns its output and lost count.
func uclient(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "turnutils_uclient", args...).CombinedOutput()
	m := lostRe.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("turnutils_uclient %v: %v\n%s", args, err, out)
	}
	lost, _ := strconv.Atoi(m[1])
	return string(out), lost
}

func selfSignedPEM(t *testing.T, cn string, alg x509.SignatureAlgorithm) (certPEM, keyPEM string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), SignatureAlgorithm: alg,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

// TestServicesThroughDaemon: the TURN service and access proxy run inside
// portico serve; credentials minted through the API carry coturn's client
// over UDP and over TCP through the one-port demultiplexer; allocations show
// in the API while they live; certificates upload through the API.
func TestServicesThroughDaemon(t *testing.T) {
	testpeer.Require(t, "turnutils_uclient", "turnutils_peer")
	dir := t.TempDir()
	mgmt := freeAddr(t)
	turnPort := testpeer.FreePort(t)
	apPort := testpeer.FreePort(t)
	relayMin := 62000 + (turnPort % 1000)
	cfg := baseConfig(mgmt) + fmt.Sprintf(`turn:
  enabled: true
  udp: [127.0.0.1:%d]
  tcp: [127.0.0.1:%d]
  relay: {port_min: %d, port_max: %d}
  allow_peers: [127.0.0.0/8]
access_proxy:
  enabled: true
  listen: 127.0.0.1:%d
`, turnPort, turnPort, relayMin, relayMin+200, apPort)
	d := startDaemon(t, dir, cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword, "PORTICO_TURN_SECRET=shared-secret-for-tests")
	raw, _ := os.ReadFile("../internal/api/openapi.json")
	oc := newOpenAPIChecker(t, raw)
	c := newClient(t, d.url)
	c.record = func(method, path string, code int, body []byte) { oc.check(t, method, path, code, body) }
	c.csrf = true
	c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})

	peerPort := testpeer.FreePort(t)
	peer := exec.Command("turnutils_peer", "-L", "127.0.0.1", "-p", strconv.Itoa(peerPort))
	if err := peer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Process.Kill(); peer.Wait() })
	time.Sleep(300 * time.Millisecond)

	var cred struct{ Username, Password, Realm string }
	c.must(200, "POST", "/api/v1/turn/credentials", map[string]string{"user": "guest-browser", "ttl": "10m"}).json(t, &cred)
	if !strings.HasSuffix(cred.Username, ":guest-browser") || cred.Password == "" {
		t.Fatalf("minted %+v", cred)
	}

	t.Run("udp with minted credentials, allocation visible live", func(t *testing.T) {
		done := make(chan struct{})
		var out string
		var lost int
		go func() {
			defer close(done)
			out, lost = uclient(t, "-u", cred.Username, "-w", cred.Password, "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort), "-n", "60", "-z", "50", "-m", "1", "-c", "-p", strconv.Itoa(turnPort), "127.0.0.1")
		}()
		seen := false
		for !seen {
			select {
			case <-done:
				t.Fatal("uclient finished before its allocation showed in the API")
			case <-time.After(100 * time.Millisecond):
			}
			var allocs []struct {
				User        string
				Relay       string
				Permissions []string
			}
			c.must(200, "GET", "/api/v1/turn/allocations", nil).json(t, &allocs)
			for _, a := range allocs {
				seen = seen || a.User == "guest-browser"
			}
		}
		<-done
		if lost != 0 {
			t.Errorf("lost %d packets:\n%s", lost, out)
		}
	})

	t.Run("tcp through the one-port demultiplexer", func(t *testing.T) {
		out, lost := uclient(t, "-t", "-u", cred.Username, "-w", cred.Password, "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort), "-n", "20", "-m", "1", "-c", "-p", strconv.Itoa(apPort), "127.0.0.1")
		if lost != 0 {
			t.Errorf("lost %d packets:\n%s", lost, out)
		}
	})

	t.Run("long-term user from the API", func(t *testing.T) {
		c.must(201, "POST", "/api/v1/turn/users", map[string]string{"name": "roomsys", "password": "room-password"})
		c.must(200, "GET", "/api/v1/turn/users", nil)
		out, lost := uclient(t, "-u", "roomsys", "-w", "room-password", "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort), "-n", "10", "-m", "1", "-c", "-p", strconv.Itoa(turnPort), "127.0.0.1")
		if lost != 0 {
			t.Errorf("lost %d:\n%s", lost, out)
		}
		c.must(204, "DELETE", "/api/v1/turn/users/roomsys", nil)
		// The CLI manages the same users beside the running daemon.
		out, err := run(t, []string{"PORTICO_PASSWORD=cli-password"}, "turn", "user", "add", "cliuser", "--data", filepath.Join(dir, "data"))
		if err != nil {
			t.Fatalf("turn user add: %v\n%s", err, out)
		}
		out, lost = uclient(t, "-u", "cliuser", "-w", "cli-password", "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort), "-n", "10", "-m", "1", "-c", "-p", strconv.Itoa(turnPort), "127.0.0.1")
		if lost != 0 {
			t.Errorf("lost %d:\n%s", lost, out)
		}
		if out, err := run(t, nil, "turn", "user", "list", "--data", filepath.Join(dir, "data")); err != nil || !strings.Contains(out, "cliuser") {
			t.Errorf("turn user list: %v\n%s", err, out)
		}
	})

	t.Run("metrics updated", func(t *testing.T) {
		r := c.must(200, "GET", "/metrics", nil)
		if !strings.Contains(string(r.body), "portico_turn_") {
			t.Error("no portico_turn_ metrics")
		}
	})

	t.Run("live turn change", func(t *testing.T) {
		var cur struct{ Version int64 }
		c.must(200, "GET", "/api/v1/config", nil).json(t, &cur)
		live := strings.Replace(cfg, "  allow_peers: [127.0.0.0/8]\n", "  allow_peers: [127.0.0.0/8]\n  rest_max_ttl: 1m\n  realm: elsewhere.test\n", 1)
		c.must(200, "PUT", "/api/v1/config", live, "If-Match", fmt.Sprintf(`"%d"`, cur.Version))
		var cred struct{ Username string }
		c.must(200, "POST", "/api/v1/turn/credentials", map[string]string{"user": "after-change", "ttl": "10m"}).json(t, &cred)
		ts, _, _ := strings.Cut(cred.Username, ":")
		exp, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || time.Until(time.Unix(exp, 0)) > 90*time.Second {
			t.Errorf("credential minted after rest_max_ttl: 1m expires at %s (%v)", ts, err)
		}
		var st struct {
			PendingRestart []string `json:"pending_restart"`
		}
		c.must(200, "GET", "/api/v1/status", nil).json(t, &st)
		if strings.Join(st.PendingRestart, ",") != "turn.realm" {
			t.Errorf("pending_restart = %q, want only turn.realm", st.PendingRestart)
		}
	})

	t.Run("certificates through the API", func(t *testing.T) {
		cp, kp := selfSignedPEM(t, "edge.example.com", x509.ECDSAWithSHA256)
		name := "edge (2026) №1/../x.pem"
		c.must(201, "POST", "/api/v1/certificates", map[string]string{"name": name, "pem": cp, "key_pem": kp})
		var list []struct{ Name string }
		c.must(200, "GET", "/api/v1/certificates", nil).json(t, &list)
		found := false
		for _, l := range list {
			found = found || l.Name == name
		}
		if !found {
			t.Errorf("uploaded certificate not listed: %+v", list)
		}
		weak, wkey := selfSignedPEM(t, "weak.example.com", x509.ECDSAWithSHA1)
		c.must(422, "POST", "/api/v1/certificates", map[string]string{"name": "weak", "pem": weak, "key_pem": wkey})
		c.must(200, "POST", "/api/v1/certificates/"+url.PathEscape("next edge")+"/csr", map[string]any{"common_name": "edge.example.com", "sans": []string{"edge.example.com"}})
		c.must(204, "DELETE", "/api/v1/certificates/"+url.PathEscape(name), nil)
	})
	d.stop()
}
