package app

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/portico-edge/portico/internal/config"
)

// nonlocalBind and nonlocalBind6 are the sysctls that let a socket bind
// an IPv4 or IPv6 address the node does not hold (yet): a backup's
// listeners on the VIPs.
const (
	nonlocalBind  = "/proc/sys/net/ipv4/ip_nonlocal_bind"
	nonlocalBind6 = "/proc/sys/net/ipv6/ip_nonlocal_bind"
)

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
	// bound are the VIPs bound, by family (key: IPv6).
	bound := map[bool][]string{}
	seen := map[netip.Addr]bool{}
	check := func(s string) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		a = a.Unmap()
		if vrid, ok := vips[a]; ok && !seen[a] {
			seen[a] = true
			bound[a.Is6()] = append(bound[a.Is6()], fmt.Sprintf("%s (group %d)", a, vrid))
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
	for _, v6 := range []bool{false, true} {
		if len(bound[v6]) == 0 {
			continue
		}
		file, name := nonlocalBind, "net.ipv4.ip_nonlocal_bind"
		if v6 {
			file, name = nonlocalBind6, "net.ipv6.ip_nonlocal_bind"
		}
		b, err := readFile(file)
		if err != nil || strings.TrimSpace(string(b)) == "0" {
			return fmt.Errorf("ha: this node binds the VIPs %s, which it holds only as master; set the sysctl %s=1 so that a backup binds them too (docs/ha.md)", strings.Join(bound[v6], ", "), name)
		}
	}
	return nil
}
