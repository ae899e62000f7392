package test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/testpeer"
)

// netnsPeer is a network namespace joined to this one by a veth pair:
// host side hostIP, namespace side peerIP, on a /24 of 10.250.0.0/16 that
// the test owns and removes.
type netnsPeer struct {
	name, hostIP, peerIP, subnet string
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newNetnsPeer(t *testing.T) *netnsPeer {
	t.Helper()
	testpeer.LockNetwork(t)
	return newNetnsPeerAt(t, 0)
}

// newNetnsPeerAt makes the test's k-th namespace (k > 0 after a
// newNetnsPeer, whose network lock covers it), on its own /24.
func newNetnsPeerAt(t *testing.T, k int) *netnsPeer {
	t.Helper()
	testpeer.Require(t, "ip", "curl")
	if os.Geteuid() != 0 {
		t.Fatal("network namespaces need root; run the suite as root (CI does)")
	}
	n := (os.Getpid() + k) % 250
	p := &netnsPeer{
		name:   fmt.Sprintf("portico-t%d-%d", os.Getpid(), k),
		hostIP: fmt.Sprintf("10.250.%d.1", n),
		peerIP: fmt.Sprintf("10.250.%d.2", n),
		subnet: fmt.Sprintf("10.250.%d.0/24", n),
	}
	host, peer := fmt.Sprintf("pth%d%d", os.Getpid(), k), fmt.Sprintf("ptp%d%d", os.Getpid(), k)
	ipCmd(t, "netns", "add", p.name)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run()
		exec.Command("ip", "netns", "del", p.name).Run()
	})
	ipCmd(t, "link", "add", host, "type", "veth", "peer", "name", peer)
	ipCmd(t, "link", "set", peer, "netns", p.name)
	ipCmd(t, "addr", "add", p.hostIP+"/24", "dev", host)
	ipCmd(t, "link", "set", host, "up")
	ipCmd(t, "-n", p.name, "addr", "add", p.peerIP+"/24", "dev", peer)
	ipCmd(t, "-n", p.name, "link", "set", peer, "up")
	ipCmd(t, "-n", p.name, "link", "set", "lo", "up")
	return p
}

// curl runs curl inside the namespace and reports whether it got an HTTP answer.
func (p *netnsPeer) curl(url string) (string, bool) {
	out, err := exec.Command("ip", "netns", "exec", p.name, "curl", "-sk", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", url).CombinedOutput()
	return string(out), err == nil
}

// TestManagementAllowedNetworks: a client outside management.allowed_networks
// (in its own network namespace) is refused before TLS; a live configuration
// change that adds its network lets it in without a restart.
func TestManagementAllowedNetworks(t *testing.T) {
	ns := newNetnsPeer(t)
	mgmt := fmt.Sprintf("%s:%d", ns.hostIP, testpeer.FreePort(t))
	cfg := strings.Replace(baseConfig(mgmt), "  lockout: 1m\n", fmt.Sprintf("  lockout: 1m\n  allowed_networks: [%s/32]\n", ns.hostIP), 1)
	d := startDaemon(t, t.TempDir(), cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	url := d.url + "/healthz"
	if code, ok := ns.curl(url); ok {
		t.Fatalf("a client outside allowed_networks got HTTP %s", code)
	}
	c := newClient(t, d.url) // from the node's own address, which the list allows
	c.csrf = true
	c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	var cur struct{ Version int64 }
	c.must(200, "GET", "/api/v1/config", nil).json(t, &cur)
	wider := strings.Replace(cfg, ns.hostIP+"/32", ns.subnet, 1)
	c.must(200, "PUT", "/api/v1/config", wider, "If-Match", fmt.Sprintf(`"%d"`, cur.Version))
	if code, ok := ns.curl(url); !ok || code != "200" {
		t.Fatalf("after allowing %s the namespace client got %q (ok %v)", ns.subnet, code, ok)
	}
	metrics := string(c.must(200, "GET", "/metrics", nil).body)
	if !strings.Contains(metrics, "portico_management_denied_connections_total 1") {
		t.Errorf("denied counter not 1:\n%s", grepLines(metrics, "portico_management_denied"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
