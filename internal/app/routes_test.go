package app

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestRoutes reads the routes of a network namespace the test makes: a
// veth link (d0, its peer d1 in the same namespace) with 192.0.2.1/24 and a static route to 198.51.100.0/24 via
// 192.0.2.254 (documentation addresses, reachable from nowhere).
func TestRoutes(t *testing.T) {
	ip := testpeer.Require(t, "ip")[0]
	if os.Geteuid() != 0 {
		t.Fatal("making a network namespace needs root")
	}
	ns := fmt.Sprintf("portico-routes-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	run("-n", ns, "link", "set", "lo", "up")
	run("-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	run("-n", ns, "link", "set", "d0", "up")
	run("-n", ns, "link", "set", "d1", "up")
	run("-n", ns, "addr", "add", "192.0.2.1/24", "dev", "d0")
	run("-n", ns, "route", "add", "198.51.100.0/24", "via", "192.0.2.254", "dev", "d0", "metric", "7")

	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()

	cfg := config.Default()
	cfg.Interfaces.External = config.Interface{Address: "192.0.2.1"}
	cfg.Interfaces.Internal = config.Interface{Address: "192.0.2.1", Networks: []string{"198.51.100.0/24", "203.0.113.0/24"}}
	cfg.Interfaces.Management = config.Interface{Address: "127.0.0.1"}
	got := routeReader{nh}.routes(cfg)
	if len(got) != 3 {
		t.Fatalf("%d sides, want 3: %+v", len(got), got)
	}
	ext := got[0]
	if ext.Interface != "external" || ext.Link != "d0" || ext.Error != "" {
		t.Fatalf("external: %+v", ext)
	}
	has := func(rs []api.Route, want api.Route) bool {
		for _, r := range rs {
			if r.Destination == want.Destination && r.Gateway == want.Gateway && r.Table == want.Table && r.Device == want.Device &&
				(want.Metric == 0 || r.Metric == want.Metric) && (want.Protocol == "" || r.Protocol == want.Protocol) {
				return true
			}
		}
		return false
	}
	for _, want := range []api.Route{
		{Destination: "198.51.100.0/24", Gateway: "192.0.2.254", Device: "d0", Metric: 7, Table: "main", Protocol: "boot"},
		{Destination: "192.0.2.0/24", Device: "d0", Table: "main", Protocol: "kernel"},
		{Destination: "192.0.2.1/32", Device: "d0", Table: "local"},
	} {
		if !has(ext.Routes, want) {
			t.Errorf("external routes lack %+v: %+v", want, ext.Routes)
		}
	}
	in := got[1]
	if len(in.Networks) != 2 {
		t.Fatalf("internal networks: %+v", in.Networks)
	}
	if n := in.Networks[0]; n.Device != "d0" || n.Gateway != "192.0.2.254" || !n.SameLink || n.Error != "" {
		t.Errorf("198.51.100.0/24: %+v", n)
	}
	if n := in.Networks[1]; n.Error == "" || n.SameLink {
		t.Errorf("203.0.113.0/24 has no route in the namespace, got %+v", n)
	}
	if m := got[2]; m.Link != "lo" || !has(m.Routes, api.Route{Destination: "127.0.0.0/8", Device: "lo", Table: "local"}) {
		t.Errorf("management: %+v", m)
	}
}
