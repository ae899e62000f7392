package test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestTunnelSeveralClients: two inside nodes (an inside HA pair), each in
// its own namespace behind a firewall that drops every inbound
// connection, connect to one DMZ node and both stay connected. The node of
// higher priority carries the DMZ node's flows; when its path is cut, the
// other carries them, and nginx inside stays reachable through the DMZ
// node; when the path comes back, the preferred node reconnects and takes
// over again.
func TestTunnelSeveralClients(t *testing.T) {
	pair, ns1, ns2, _, page := startTwoInsideNodes(t)

	active := func(ns *netnsPeer, clients int) func() bool {
		return func() bool {
			st := tunnelFull(t, pair.api)
			return st.State == "up" && st.Clients == clients && strings.HasPrefix(st.Peer, ns.peerIP+":")
		}
	}
	waitFor(t, 30*time.Second, active(ns1, 2))
	waitPage(t, page, "inside nginx", pair.dmz)

	nft := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns1.name, "nft"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v %s", args, err, out)
		}
	}
	nft("add chain inet portico_test cut { type filter hook output priority 0; policy accept; }")
	nft("add rule inet portico_test cut ip daddr " + ns1.hostIP + " drop")
	cut := time.Now()
	waitFor(t, 10*time.Second, active(ns2, 1))
	t.Logf("the second inside node carries the flows %v after the first one's path was cut", time.Since(cut).Round(100*time.Millisecond))
	waitPage(t, page, "inside nginx", pair.dmz)

	nft("delete chain inet portico_test cut")
	waitFor(t, 15*time.Second, active(ns1, 2))
	waitPage(t, page, "inside nginx", pair.dmz)
}

// twoInsideNamespaces makes the namespaces of two inside nodes. The DMZ
// node's tunnel address goes on the first one's veth; the second reaches
// it through its own veth to the host.
func twoInsideNamespaces(t *testing.T) (ns1, ns2 *netnsPeer) {
	t.Helper()
	testpeer.Require(t, "nginx", "nft", "curl")
	ns1 = newNetnsPeer(t)
	ns2 = newNetnsPeerAt(t, 1)
	ipCmd(t, "-n", ns2.name, "route", "add", ns1.hostIP+"/32", "via", ns2.hostIP)
	return ns1, ns2
}

// startTwoInsideNodes starts a DMZ node offering nginx inside as service
// web and two inside nodes delivering it, each in its own namespace with
// its own nginx, of priorities 200 and 100; it returns the second node and
// the page's URL through the DMZ node.
func startTwoInsideNodes(t *testing.T) (pair *tunnelPair, ns1, ns2 *netnsPeer, second *daemon, page string) {
	t.Helper()
	ns1, ns2 = twoInsideNamespaces(t)
	startNginxIn(t, ns1, "127.0.0.1:8081")
	startNginxIn(t, ns2, "127.0.0.1:8081")
	webAddr := freeAddr(t)
	pair = startTunnelDMZ(t, ns1, baseConfig(freeAddr(t)), fmt.Sprintf("  - {name: web, proto: tcp, listen: %s}\n", webAddr))
	svc := "  - {name: web, proto: tcp, target: 127.0.0.1:8081}\n"
	pair.addInside(t, ns1, "  priority: 200\n", svc)
	second = pair.addInside(t, ns2, "  priority: 100\n", svc)
	return pair, ns1, ns2, second, "http://" + webAddr + "/index.html"
}

// tunnelServedBy is, per service in GET /api/v1/tunnel, the addresses of
// the clients serving it.
func tunnelServedBy(t *testing.T, api *apiClient) map[string][]string {
	t.Helper()
	var st struct {
		Services []struct {
			Name     string   `json:"name"`
			ServedBy []string `json:"served_by"`
		} `json:"services"`
	}
	api.must(200, "GET", "/api/v1/tunnel", nil).json(t, &st)
	m := map[string][]string{}
	for _, s := range st.Services {
		m[s.Name] = s.ServedBy
	}
	return m
}

// servedByOnly reports whether served lists exactly the node of ns.
func servedByOnly(served []string, ns *netnsPeer) bool {
	return len(served) == 1 && strings.HasPrefix(served[0], ns.peerIP+":")
}

// curlBody fetches url once and returns its body, "" on failure.
func curlBody(url string) string {
	out, err := exec.Command("curl", "-s", "--max-time", "3", url).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// TestTunnelServicesSplit: two inside nodes, each in its own namespace
// behind a firewall that drops every inbound connection and each with its
// own nginx, deliver the same three services. Each node ranks a different
// one of the two mode-one services highest, so the DMZ node carries each
// through its own node; the mode-all service spreads its connections over
// both. The DMZ node's API names the node serving each service. When one
// node's path is cut, its service and its share of the mode-all service
// move to the other node at once, with an event and a metric per change.
func TestTunnelServicesSplit(t *testing.T) {
	ns1, ns2 := twoInsideNamespaces(t)
	startNginxSaying(t, ns1, "127.0.0.1:8081", "node one\n")
	startNginxSaying(t, ns2, "127.0.0.1:8081", "node two\n")

	one, two, all := freeAddr(t), freeAddr(t), freeAddr(t)
	pair := startTunnelDMZ(t, ns1, baseConfig(freeAddr(t)), fmt.Sprintf(
		"  - {name: one, proto: tcp, listen: %s}\n  - {name: two, proto: tcp, listen: %s}\n  - {name: all, proto: tcp, listen: %s, mode: all}\n", one, two, all))
	inside := func(pOne, pTwo int) string {
		return fmt.Sprintf("  - {name: one, proto: tcp, target: 127.0.0.1:8081, priority: %d}\n"+
			"  - {name: two, proto: tcp, target: 127.0.0.1:8081, priority: %d}\n"+
			"  - {name: all, proto: tcp, target: 127.0.0.1:8081}\n", pOne, pTwo)
	}
	pair.addInside(t, ns1, "", inside(200, 50))
	pair.addInside(t, ns2, "", inside(50, 200))
	waitFor(t, 30*time.Second, func() bool {
		sb := tunnelServedBy(t, pair.api)
		return servedByOnly(sb["one"], ns1) && servedByOnly(sb["two"], ns2) && len(sb["all"]) == 2
	})
	if got := curlBody("http://" + one + "/index.html"); got != "node one" {
		t.Fatalf("service one answered %q, want node one", got)
	}
	if got := curlBody("http://" + two + "/index.html"); got != "node two" {
		t.Fatalf("service two answered %q, want node two", got)
	}
	seen := map[string]int{}
	for range 20 {
		seen[curlBody("http://"+all+"/index.html")]++
	}
	if seen["node one"] == 0 || seen["node two"] == 0 || seen["node one"]+seen["node two"] != 20 {
		t.Fatalf("mode all answers %v, want both nodes", seen)
	}
	moves := metricSum(string(pair.api.must(200, "GET", "/metrics", nil).body), `portico_tunnel_service_moves_total{service="two"}`)

	// The second node's path is cut: its services move to the first.
	nft := exec.Command("ip", "netns", "exec", ns2.name, "nft", "add chain inet portico_test cut { type filter hook output priority 0; policy accept; } ; add rule inet portico_test cut ip daddr "+ns1.hostIP+" drop")
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	cut := time.Now()
	waitFor(t, 10*time.Second, func() bool {
		sb := tunnelServedBy(t, pair.api)
		return servedByOnly(sb["two"], ns1) && servedByOnly(sb["all"], ns1)
	})
	t.Logf("services moved %v after the second node's path was cut", time.Since(cut).Round(100*time.Millisecond))
	if got := curlBody("http://" + two + "/index.html"); got != "node one" {
		t.Fatalf("service two answered %q after the move, want node one", got)
	}
	for range 5 {
		if got := curlBody("http://" + all + "/index.html"); got != "node one" {
			t.Fatalf("mode all answered %q after the move, want node one", got)
		}
	}
	if now := metricSum(string(pair.api.must(200, "GET", "/metrics", nil).body), `portico_tunnel_service_moves_total{service="two"}`); now <= moves {
		t.Fatalf("service two moves %v, was %v", now, moves)
	}
	var events []struct{ Component, Message string }
	pair.api.must(200, "GET", "/api/v1/events", nil).json(t, &events)
	found := false
	for _, e := range events {
		found = found || e.Component == "tunnel" && strings.HasPrefix(e.Message, "tunnel service two served by "+ns1.peerIP+":")
	}
	if !found {
		t.Fatalf("no event for service two's move in %+v", events)
	}
}
