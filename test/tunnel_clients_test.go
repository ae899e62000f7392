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
	testpeer.Require(t, "nginx", "nft", "curl")
	ns1 := newNetnsPeer(t)
	ns2 := newNetnsPeerAt(t, 1)
	// The DMZ node's tunnel address is on ns1's veth; ns2 reaches it
	// through its own veth to the host.
	ipCmd(t, "-n", ns2.name, "route", "add", ns1.hostIP+"/32", "via", ns2.hostIP)
	startNginxIn(t, ns1, "127.0.0.1:8081")
	startNginxIn(t, ns2, "127.0.0.1:8081")

	webAddr := freeAddr(t)
	pair := startTunnelDMZ(t, ns1, baseConfig(freeAddr(t)), fmt.Sprintf("  - {name: web, proto: tcp, listen: %s}\n", webAddr))
	svc := "  - {name: web, proto: tcp, target: 127.0.0.1:8081}\n"
	pair.addInside(t, ns1, "  priority: 200\n", svc)
	pair.addInside(t, ns2, "  priority: 100\n", svc)
	page := "http://" + webAddr + "/index.html"

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
