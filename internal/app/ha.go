package app

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/portico-edge/portico/internal/config"
)

// nonlocalBind is the sysctl that lets a socket bind an address the node
// does not hold (yet): a backup's listeners on the VIPs.
const nonlocalBind = "/proc/sys/net/ipv4/ip_nonlocal_bind"

// checkVIPBinds refuses a start whose services bind a VIP of the ha
// groups while the kernel refuses to bind an address the node does not
// hold: as backup the node would fail to bind it. readFile reads the
// sysctl (os.ReadFile).
func checkVIPBinds(cfg *config.Config, readFile func(string) ([]byte, error)) error {
	if !cfg.HA.Enabled {
		return nil
	}
	vips := map[netip.Addr]int{}
	for _, g := range cfg.HA.Groups {
		for _, s := range g.Addresses {
			if a, err := netip.ParseAddr(s); err == nil {
				vips[a.Unmap()] = g.VRID
			}
		}
	}
	own := ownAddresses(cfg)
	var bound []string
	seen := map[netip.Addr]bool{}
	check := func(s string) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		a = a.Unmap()
		if vrid, ok := vips[a]; ok && !seen[a] {
			seen[a] = true
			bound = append(bound, fmt.Sprintf("%s (group %d)", a, vrid))
		}
	}
	for _, l := range own.Listeners {
		if h, _, err := net.SplitHostPort(l); err == nil {
			check(h)
		}
	}
	for _, a := range own.Addresses {
		check(a)
	}
	if len(bound) == 0 {
		return nil
	}
	b, err := readFile(nonlocalBind)
	if err == nil && strings.TrimSpace(string(b)) != "0" {
		return nil
	}
	return fmt.Errorf("ha: this node binds the VIPs %s, which it holds only as master; set the sysctl net.ipv4.ip_nonlocal_bind=1 so that a backup binds them too (docs/ha.md)", strings.Join(bound, ", "))
}
