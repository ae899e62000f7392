package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestTunnelRotation: with the inside node connected through its closed
// firewall, the DMZ node rolls its tunnel certificate ("portico tunnel
// rotate"), then the inside node rolls its own (POST
// /api/v1/tunnel/rotate). Each time the peer pins the new certificate
// over the tunnel before the old one is retired, the connection stays up
// (no reconnection) and nginx inside stays reachable through it. An inside
// node started from the state kept before its rotation presents the old
// certificate and is refused.
func TestTunnelRotation(t *testing.T) {
	testpeer.Require(t, "nginx", "nft", "curl")
	ns := newNetnsPeer(t)
	startNginxIn(t, ns, "127.0.0.1:8081")
	webAddr := freeAddr(t)
	pair := startTunnelPair(t, ns, baseConfig(freeAddr(t)),
		fmt.Sprintf("  - {name: web, proto: tcp, listen: %s}\n", webAddr),
		"  - {name: web, proto: tcp, target: 127.0.0.1:8081}\n")
	page := "http://" + webAddr + "/index.html"
	waitPage(t, page, "inside nginx", pair.dmz)
	dmz := tunnelFull(t, pair.api)

	// The DMZ node rotates, through the CLI.
	var tok struct{ Secret string }
	pair.api.must(201, "POST", "/api/v1/tokens", map[string]string{"name": "rotate"}).json(t, &tok)
	out, err := exec.Command(portico(t), "tunnel", "rotate", "--url", pair.dmz.url, "--token", tok.Secret, "--insecure").CombinedOutput()
	if err != nil {
		t.Fatalf("portico tunnel rotate: %v\n%s", err, out)
	}
	fp := strings.TrimSpace(string(out))
	if after := tunnelFull(t, pair.api); after.Fingerprint != fp || fp == dmz.Fingerprint || after.Connections != dmz.Connections || after.State != "up" {
		t.Fatalf("DMZ node after rotating to %q: before %+v, after %+v", fp, dmz, after)
	}
	waitPage(t, page, "inside nginx", pair.dmz)

	// The inside node rotates, through its API (its management port is
	// opened in the inside firewall for this).
	_, port, _ := strings.Cut(strings.TrimPrefix(pair.inside.url, "https://"), ":")
	if out, err := exec.Command("ip", "netns", "exec", ns.name, "nft", "add rule inet portico_test in tcp dport "+port+" accept").CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	raw, err := os.ReadFile("../internal/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	oc := newOpenAPIChecker(t, raw)
	inside := newClient(t, pair.inside.url)
	inside.record = func(method, path string, code int, body []byte) { oc.check(t, method, path, code, body) }
	inside.csrf = true
	inside.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	old := tunnelFull(t, inside)
	statePath := filepath.Join(pair.inside.dir, "data", "tunnel-state.json")
	kept, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	var rot struct{ Fingerprint string }
	inside.must(200, "POST", "/api/v1/tunnel/rotate", map[string]string{}).json(t, &rot)
	if now := tunnelFull(t, inside); now.Fingerprint != rot.Fingerprint || rot.Fingerprint == old.Fingerprint || now.Connections != old.Connections {
		t.Fatalf("inside node after rotating to %q: before %+v, after %+v", rot.Fingerprint, old, now)
	}
	if now := tunnelFull(t, pair.api); now.Connections != dmz.Connections || now.State != "up" {
		t.Fatalf("the DMZ node saw a reconnection: %+v", now)
	}
	waitPage(t, page, "inside nginx", pair.dmz)

	// An inside node with the retired certificate is refused.
	staleDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(staleDir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staleDir, "data", "tunnel-state.json"), kept, 0o600); err != nil {
		t.Fatal(err)
	}
	staleMgmt := fmt.Sprintf("%s:%d", ns.peerIP, testpeer.FreePort(t))
	_, stalePort, _ := strings.Cut(staleMgmt, ":")
	if out, err := exec.Command("ip", "netns", "exec", ns.name, "nft", "add rule inet portico_test in tcp dport "+stalePort+" accept").CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	rejected := dmz.Rejected
	startDaemonVia(t, []string{"ip", "netns", "exec", ns.name}, staleDir, baseConfig(staleMgmt)+fmt.Sprintf(`tunnel:
  enabled: true
  role: client
  server: %s
  backoff_max: 1s
  services:
    - {name: web, proto: tcp, target: 127.0.0.1:8081}
`, pair.addr), staleMgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	waitFor(t, 20*time.Second, func() bool { return tunnelFull(t, pair.api).Rejected > rejected })
	waitFor(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(pair.dmz.dir, "data", "log", "portico.log"))
		return strings.Contains(string(b), "tunnel client refused: certificate not pinned")
	})
	if now := tunnelFull(t, pair.api); now.Connections != dmz.Connections {
		t.Fatalf("the stale node was admitted: %+v", now)
	}
	waitPage(t, page, "inside nginx", pair.dmz)
}

// tunnelFullStats is the part of GET /api/v1/tunnel the rotation and
// migration tests read.
type tunnelFullStats struct {
	State       string `json:"state"`
	Peer        string `json:"peer"`
	Fingerprint string `json:"fingerprint"`
	Connections uint64 `json:"connections"`
	Rejected    uint64 `json:"rejected"`
	Clients     int    `json:"clients"`
}

func tunnelFull(t *testing.T, api *apiClient) tunnelFullStats {
	t.Helper()
	var st tunnelFullStats
	api.must(200, "GET", "/api/v1/tunnel", nil).json(t, &st)
	return st
}

// TestTunnelReenrollAfterMissedRotation: the DMZ node rotates its tunnel
// certificate while one of its two inside nodes is cut off. When that
// node's path comes back, it is refused by its own stale pin and says so
// instead of retrying silently: its API reports "server certificate
// changed: re-enroll" with the certificate the server presented, its
// readiness fails, its metric and log say so. An administrator issues a
// token on the DMZ node and runs "portico tunnel enroll" against the
// inside node, which enrolls again with the same identity and, once the
// other inside node is cut off, carries the traffic to nginx inside.
func TestTunnelReenrollAfterMissedRotation(t *testing.T) {
	pair, ns1, ns2, away, page := startTwoInsideNodes(t)
	waitFor(t, 30*time.Second, func() bool { return tunnelFull(t, pair.api).Clients == 2 })
	waitPage(t, page, "inside nginx", pair.dmz)

	nsRun := func(ns *netnsPeer, args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns.name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	// The away node's management port is opened in its firewall for the
	// administrator.
	_, port, _ := strings.Cut(strings.TrimPrefix(away.url, "https://"), ":")
	nsRun(ns2, "nft", "add rule inet portico_test in tcp dport "+port+" accept")
	raw, err := os.ReadFile("../internal/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	oc := newOpenAPIChecker(t, raw)
	inside := newClient(t, away.url)
	inside.record = func(method, path string, code int, body []byte) { oc.check(t, method, path, code, body) }
	pair.api.record = inside.record
	inside.csrf = true
	inside.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	identity := tunnelFull(t, inside).Fingerprint

	// Its path is cut, and the DMZ node rotates meanwhile.
	nsRun(ns2, "nft", "add chain inet portico_test cut { type filter hook output priority 0; policy accept; }")
	nsRun(ns2, "nft", "add rule inet portico_test cut ip daddr "+ns1.hostIP+" udp dport "+strings.Split(pair.addr, ":")[1]+" drop")
	waitFor(t, 10*time.Second, func() bool { return tunnelFull(t, pair.api).Clients == 1 })
	var oldTok struct {
		Token string `json:"token"`
	}
	pair.api.must(201, "POST", "/api/v1/tunnel/tokens", map[string]string{}).json(t, &oldTok)
	var rot struct{ Fingerprint string }
	pair.api.must(200, "POST", "/api/v1/tunnel/rotate", map[string]string{}).json(t, &rot)

	// The path comes back: the node is refused and says why.
	nsRun(ns2, "nft", "delete chain inet portico_test cut")
	var st struct {
		State                string `json:"state"`
		Problem              string `json:"problem"`
		PresentedFingerprint string `json:"presented_fingerprint"`
		Fingerprint          string `json:"fingerprint"`
	}
	waitFor(t, 20*time.Second, func() bool {
		inside.must(200, "GET", "/api/v1/tunnel", nil).json(t, &st)
		return st.Problem == "server certificate changed: re-enroll"
	})
	if st.State != "down" || st.PresentedFingerprint != rot.Fingerprint || tunnelFull(t, pair.api).Clients != 1 {
		t.Fatalf("the away node after the rotation: %+v (the server now presents %s)", st, rot.Fingerprint)
	}
	if r := inside.do("GET", "/readyz", nil); r.code != 503 || !strings.Contains(string(r.body), "tunnel-enrollment") {
		t.Fatalf("readyz %d %s", r.code, r.body)
	}
	if m := string(inside.must(200, "GET", "/metrics", nil).body); metricSum(m, "portico_tunnel_reenroll_required") != 1 {
		t.Fatal("portico_tunnel_reenroll_required is not 1")
	}
	if b, _ := os.ReadFile(filepath.Join(away.dir, "data", "log", "portico.log")); !strings.Contains(string(b), "server certificate changed: re-enroll") {
		t.Fatal("the away node's log does not say it must enroll again")
	}

	// The administrator enrolls it again.
	var tok struct {
		Token string `json:"token"`
	}
	pair.api.must(201, "POST", "/api/v1/tunnel/tokens", map[string]string{}).json(t, &tok)
	var apiTok struct{ Secret string }
	inside.must(201, "POST", "/api/v1/tokens", map[string]string{"name": "enroll"}).json(t, &apiTok)
	// A token issued before the rotation names the old certificate: it is
	// refused.
	inside.must(422, "POST", "/api/v1/tunnel/enroll", map[string]string{"token": oldTok.Token})
	if out, err := exec.Command(portico(t), "tunnel", "enroll", tok.Token, "--url", away.url, "--token", apiTok.Secret, "--insecure").CombinedOutput(); err != nil {
		t.Fatalf("portico tunnel enroll: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Second, func() bool { return tunnelFull(t, pair.api).Clients == 2 })
	st.Problem, st.PresentedFingerprint = "", "" // omitted when clear
	inside.must(200, "GET", "/api/v1/tunnel", nil).json(t, &st)
	if st.Problem != "" || st.State != "up" || st.Fingerprint != identity {
		t.Fatalf("after enrolling again: %+v, identity was %s", st, identity)
	}
	if r := inside.do("GET", "/readyz", nil); r.code != 200 {
		t.Fatalf("readyz %d %s", r.code, r.body)
	}

	// It carries the traffic once the other node is cut off.
	nsRun(ns1, "nft", "add chain inet portico_test cut { type filter hook output priority 0; policy accept; }")
	nsRun(ns1, "nft", "add rule inet portico_test cut ip daddr "+ns1.hostIP+" drop")
	waitFor(t, 10*time.Second, func() bool {
		f := tunnelFull(t, pair.api)
		return f.Clients == 1 && strings.HasPrefix(f.Peer, ns2.peerIP+":")
	})
	waitPage(t, page, "inside nginx", pair.dmz)
}
