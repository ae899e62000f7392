package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestTunnelMigration: during five calls with RTP flowing both ways
// through the tunnel, the inside node's outside address changes: a new
// address is added on its interface, the route toward the DMZ node moves to
// it, and then the old address is removed (an interface renumbered). The
// inside node moves its QUIC connection to the new address (RFC 9000
// section 9: it probes the new path, then switches), so the DMZ node sees
// the same connection arrive from the new address, no reconnection
// happens, and every call's media continues. Then the interface is
// renumbered abruptly (a third address added and the current one removed
// at once), and the connection moves again.
func TestTunnelMigration(t *testing.T) {
	const calls = 5
	r := startTunnelSIPRig(t, "", 3*calls)
	lc := startLongCalls(t, r, calls)

	before := tunnelFull(t, r.api)
	if before.State != "up" || !strings.HasPrefix(before.Peer, r.ns.peerIP+":") || before.Connections != 1 {
		t.Fatalf("before the change: %+v", before)
	}
	// The namespace's veth end, named by newNetnsPeerAt. The interface is
	// renumbered make-before-break: the new address is added, the route
	// toward the DMZ node moves to it, and only then is the old address
	// removed (promoting the new one keeps the subnet's route).
	dev := fmt.Sprintf("ptp%d%d", os.Getpid(), 0)
	newIP := strings.TrimSuffix(r.ns.peerIP, ".2") + ".3"
	ipCmd(t, "netns", "exec", r.ns.name, "sysctl", "-qw", "net.ipv4.conf."+dev+".promote_secondaries=1")
	ipCmd(t, "-n", r.ns.name, "addr", "add", newIP+"/24", "dev", dev)
	ipCmd(t, "-n", r.ns.name, "route", "replace", r.ns.subnet, "dev", dev, "src", newIP)
	changed := time.Now()

	waitFor(t, 15*time.Second, func() bool { return strings.HasPrefix(tunnelFull(t, r.api).Peer, newIP+":") })
	lc.resumed(t)
	after := tunnelFull(t, r.api)
	if after.State != "up" || after.Connections != before.Connections {
		t.Fatalf("the inside node reconnected instead of migrating: before %+v, after %+v", before, after)
	}
	t.Logf("connection moved to %s and media continued in all %d calls %v after the route moved", after.Peer, calls, time.Since(changed).Round(100*time.Millisecond))

	ipCmd(t, "-n", r.ns.name, "addr", "del", r.ns.peerIP+"/24", "dev", dev)
	lc.resumed(t)

	// Renumbered abruptly: a third address comes and the current one goes
	// at once, so sending from the old address fails before the client
	// sees the new one; the connection still moves.
	thirdIP := strings.TrimSuffix(r.ns.peerIP, ".2") + ".4"
	ipCmd(t, "-n", r.ns.name, "addr", "add", thirdIP+"/24", "dev", dev)
	ipCmd(t, "-n", r.ns.name, "addr", "del", newIP+"/24", "dev", dev)
	waitFor(t, 15*time.Second, func() bool { return strings.HasPrefix(tunnelFull(t, r.api).Peer, thirdIP+":") })
	lc.resumed(t)
	if now := tunnelFull(t, r.api); now.Connections != before.Connections {
		t.Fatalf("the inside node reconnected after the abrupt change: %+v", now)
	}
	lc.end(t)
	if end := tunnelFull(t, r.api); end.Connections != before.Connections {
		t.Fatalf("the inside node reconnected during the calls: %+v", end)
	}
}
