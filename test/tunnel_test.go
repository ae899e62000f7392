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

// TestTunnelThroughFirewall: an inside node in its own network namespace,
// whose nftables drop every inbound connection, dials out to the DMZ node
// (this namespace) and enrolls with a token the DMZ node's API issued;
// curl on the DMZ side then reaches nginx inside only through the tunnel.
func TestTunnelThroughFirewall(t *testing.T) {
	testpeer.Require(t, "nginx", "nft", "curl")
	ns := newNetnsPeer(t)

	// nginx inside, on the namespace's loopback: nothing outside it can
	// reach that address but the tunnel client.
	ngDir := t.TempDir()
	ngConf := filepath.Join(ngDir, "nginx.conf")
	os.WriteFile(filepath.Join(ngDir, "index.html"), []byte("inside nginx\n"), 0o644)
	os.WriteFile(ngConf, fmt.Appendf(nil, `user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  server { listen 127.0.0.1:8081; root %[1]s; }
}
`, ngDir), 0o644)
	ng := exec.Command("ip", "netns", "exec", ns.name, "nginx", "-c", ngConf, "-g", "daemon off;")
	if err := ng.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	t.Cleanup(func() {
		ng.Process.Kill()
		ng.Wait()
	})

	// The DMZ node: tunnel server on the veth address, the service offered
	// on loopback.
	dmzMgmt := freeAddr(t)
	tunnelAddr := fmt.Sprintf("%s:%d", ns.hostIP, testpeer.FreePort(t))
	webAddr := freeAddr(t)
	dmz := startDaemon(t, t.TempDir(), baseConfig(dmzMgmt)+fmt.Sprintf(`tunnel:
  enabled: true
  role: server
  listen: %s
  services:
  - {name: web, proto: tcp, listen: %s}
`, tunnelAddr, webAddr), dmzMgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	api := newClient(t, dmz.url)
	api.csrf = true
	api.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	var tok struct {
		Token string `json:"token"`
	}
	api.must(201, "POST", "/api/v1/tunnel/tokens", map[string]string{}).json(t, &tok)

	// The inside node, started in its namespace before the firewall closes
	// so that its health can be checked from here.
	inMgmt := fmt.Sprintf("%s:%d", ns.peerIP, testpeer.FreePort(t))
	startDaemonVia(t, []string{"ip", "netns", "exec", ns.name}, t.TempDir(), baseConfig(inMgmt)+fmt.Sprintf(`tunnel:
  enabled: true
  role: client
  server: %s
  enrollment_token: %s
  services:
  - {name: web, proto: tcp, target: 127.0.0.1:8081}
`, tunnelAddr, tok.Token), inMgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)

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

	var body string
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := exec.Command("curl", "-s", "--max-time", "5", "http://"+webAddr+"/index.html").CombinedOutput()
		if body = string(out); err == nil && strings.Contains(body, "inside nginx") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("nginx never answered through the tunnel: %q\nDMZ log:\n%s", body, dmz.out.String())
		}
	}
	var st struct {
		State    string `json:"state"`
		Services []struct {
			Name       string `json:"name"`
			FlowsTotal uint64 `json:"flows_total"`
		} `json:"services"`
	}
	api.must(200, "GET", "/api/v1/tunnel", nil).json(t, &st)
	if st.State != "up" || len(st.Services) != 1 || st.Services[0].FlowsTotal == 0 {
		t.Fatalf("GET /api/v1/tunnel: %+v", st)
	}
}
