package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestTunnelThroughFirewall: an inside node in its own network namespace,
// whose nftables drop every inbound connection, dials out to the DMZ node
// (this namespace) and enrolls with a token the DMZ node's API issued;
// curl on the DMZ side then reaches nginx inside only through the tunnel.
func TestTunnelThroughFirewall(t *testing.T) {
	testpeer.Require(t, "nginx", "nft", "curl")
	ns := newNetnsPeer(t)

	startNginxIn(t, ns, "127.0.0.1:8081")

	webAddr := freeAddr(t)
	pair := startTunnelPair(t, ns, baseConfig(freeAddr(t)),
		fmt.Sprintf("  - {name: web, proto: tcp, listen: %s}\n", webAddr),
		"  - {name: web, proto: tcp, target: 127.0.0.1:8081}\n")
	dmz, api := pair.dmz, pair.api

	waitPage(t, "http://"+webAddr+"/index.html", "inside nginx", dmz)
	if state, flows := tunnelServices(t, api); state != "up" || len(flows) != 1 || flows["web"] == 0 {
		t.Fatalf("GET /api/v1/tunnel: %s %v", state, flows)
	}
}

// tunnelPair is a DMZ node (this namespace) and an inside node in ns,
// enrolled and joined by the tunnel, with the inside firewall closed.
type tunnelPair struct {
	dmz    *daemon
	api    *apiClient
	inside *daemon
	addr   string // the DMZ node's tunnel address
}

// startTunnelPair starts the DMZ node from dmzCfg plus a tunnel server
// section listing dmzServices, and the inside node with a tunnel client
// listing insideServices (YAML list items indented by two spaces) that
// retries at least every second; the inside node enrolls with a token the
// DMZ node's API issued. Then the inside namespace's nftables drop every
// inbound connection.
func startTunnelPair(t *testing.T, ns *netnsPeer, dmzCfg, dmzServices, insideServices string) *tunnelPair {
	t.Helper()
	pair := startTunnelDMZ(t, ns, dmzCfg, dmzServices)
	pair.inside = pair.addInside(t, ns, "", insideServices)
	return pair
}

// startTunnelDMZ starts the DMZ node from dmzCfg plus a tunnel server
// section listing dmzServices, listening on ns's host address.
func startTunnelDMZ(t *testing.T, ns *netnsPeer, dmzCfg, dmzServices string) *tunnelPair {
	t.Helper()
	dmzMgmt := mgmtOf(t, dmzCfg)
	tunnelAddr := fmt.Sprintf("%s:%d", ns.hostIP, testpeer.FreePort(t))
	dmz := startDaemon(t, t.TempDir(), dmzCfg+fmt.Sprintf(`tunnel:
  enabled: true
  role: server
  listen: %s
  services:
%s`, tunnelAddr, dmzServices), dmzMgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	api := newClient(t, dmz.url)
	api.csrf = true
	api.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	return &tunnelPair{dmz: dmz, api: api, addr: tunnelAddr}
}

// addInside starts an inside node in ns with a tunnel client (extra adds
// keys to its section) listing insideServices that retries at least every
// second; it enrolls with a token the DMZ node's API issued. Then ns's
// nftables drop every inbound connection.
func (p *tunnelPair) addInside(t *testing.T, ns *netnsPeer, extra, insideServices string) *daemon {
	t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	p.api.must(201, "POST", "/api/v1/tunnel/tokens", map[string]string{}).json(t, &tok)

	// The inside node, started in its namespace before the firewall closes
	// so that its health can be checked from here.
	inMgmt := fmt.Sprintf("%s:%d", ns.peerIP, testpeer.FreePort(t))
	inside := startDaemonVia(t, []string{"ip", "netns", "exec", ns.name}, t.TempDir(), baseConfig(inMgmt)+fmt.Sprintf(`tunnel:
  enabled: true
  role: client
  server: %s
  enrollment_token: %s
  backoff_max: 1s
%s  services:
%s`, p.addr, tok.Token, extra, insideServices), inMgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)

	nft := func(rule string) {
		t.Helper()
		if out, err := exec.Command("ip", "netns", "exec", ns.name, "nft", rule).CombinedOutput(); err != nil {
			t.Fatalf("nft %s: %v %s", rule, err, out)
		}
	}
	nft("add table inet portico_test")
	nft("add chain inet portico_test in { type filter hook input priority 0; policy drop; }")
	nft("add rule inet portico_test in iifname lo accept")
	nft("add rule inet portico_test in ct state established,related accept")
	if out, err := exec.Command("curl", "-sk", "--max-time", "3", "https://"+inMgmt+"/healthz").CombinedOutput(); err == nil {
		t.Fatalf("the inside node is still reachable inbound: %s", out)
	}
	return inside
}

// waitPage fetches url with curl until the body holds want, for at most
// 30 s; d's output shows when it never does.
func waitPage(t *testing.T, url, want string, d *daemon) {
	t.Helper()
	var body string
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := exec.Command("curl", "-s", "--max-time", "5", url).CombinedOutput()
		if body = string(out); err == nil && strings.Contains(body, want) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s never answered %q: %q\nDMZ log:\n%s", url, want, body, d.out.String())
		}
	}
}

// mgmtOf is the management listen address in a configuration document.
func mgmtOf(t *testing.T, cfg string) string {
	t.Helper()
	_, rest, ok := strings.Cut(cfg, "management:\n  listen: ")
	if !ok {
		t.Fatal("configuration without management.listen")
	}
	addr, _, _ := strings.Cut(rest, "\n")
	return addr
}

// tunnelServices is GET /api/v1/tunnel's state and each service's flows.
func tunnelServices(t *testing.T, api *apiClient) (string, map[string]uint64) {
	t.Helper()
	state, svcs := tunnelStatus(t, api)
	flows := map[string]uint64{}
	for name, s := range svcs {
		flows[name] = s.FlowsTotal
	}
	return state, flows
}

// tunnelService is one service's counters in GET /api/v1/tunnel.
type tunnelService struct {
	Name       string `json:"name"`
	FlowsTotal uint64 `json:"flows_total"`
	In         uint64 `json:"bytes_in"`
	Out        uint64 `json:"bytes_out"`
}

// tunnelStatus is GET /api/v1/tunnel's state and services by name.
func tunnelStatus(t *testing.T, api *apiClient) (string, map[string]tunnelService) {
	t.Helper()
	var st struct {
		State    string          `json:"state"`
		Services []tunnelService `json:"services"`
	}
	api.must(200, "GET", "/api/v1/tunnel", nil).json(t, &st)
	m := map[string]tunnelService{}
	for _, s := range st.Services {
		m[s.Name] = s
	}
	return st.State, m
}

// startNginxIn runs nginx in ns on addr, serving index.html "inside
// nginx", until the test ends: nothing outside ns can reach it but the
// tunnel client.
func startNginxIn(t *testing.T, ns *netnsPeer, addr string) {
	t.Helper()
	startNginxSaying(t, ns, addr, "inside nginx\n")
}

// startNginxSaying is startNginxIn with body as index.html.
func startNginxSaying(t *testing.T, ns *netnsPeer, addr, body string) {
	t.Helper()
	ngDir := t.TempDir()
	ngConf := filepath.Join(ngDir, "nginx.conf")
	os.WriteFile(filepath.Join(ngDir, "index.html"), []byte(body), 0o644)
	os.WriteFile(ngConf, fmt.Appendf(nil, `user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  server { listen %[2]s; root %[1]s; }
}
`, ngDir, addr), 0o644)
	ng := exec.Command("ip", "netns", "exec", ns.name, "nginx", "-c", ngConf, "-g", "daemon off;")
	if err := ng.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	t.Cleanup(func() {
		// SIGQUIT lets the master stop its workers; killed outright it
		// would leave them running, orphaned.
		ng.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { ng.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			ng.Process.Kill()
			<-done
		}
	})
}
