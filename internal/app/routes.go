package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/config"
)

// routeReader reads links, addresses and routes from one network namespace
// (the node's own; a test passes a handle to a namespace it made).
type routeReader struct{ h *netlink.Handle }

// routes reports, for each side of cfg that has an address, the link that
// holds it, every route over that link (all tables), and the route the
// kernel picks for each of the side's networks. It only reads.
func (rr routeReader) routes(cfg *config.Config) []api.InterfaceRoutes {
	sides := []struct {
		name  string
		iface config.Interface
	}{{"external", cfg.Interfaces.External}, {"internal", cfg.Interfaces.Internal}, {"management", cfg.Interfaces.Management}}
	out := make([]api.InterfaceRoutes, 0, len(sides))
	links, lerr := rr.h.LinkList()
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	for _, s := range sides {
		ir := api.InterfaceRoutes{Interface: s.name, Address: s.iface.Address, Routes: []api.Route{}, Networks: []api.NetworkRoute{}}
		if s.iface.Address == "" {
			continue
		}
		addr, err := netip.ParseAddr(s.iface.Address)
		if err != nil || lerr != nil {
			ir.Error = fmt.Sprintf("no link: %v", firstErr(err, lerr))
			out = append(out, ir)
			continue
		}
		link := rr.linkOf(links, addr)
		if link == nil {
			ir.Error = "no link holds " + addr.String()
		} else {
			ir.Link = link.Attrs().Name
			rs, err := rr.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: link.Attrs().Index, Table: unix.RT_TABLE_UNSPEC},
				netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
			if err != nil {
				ir.Error = err.Error()
			}
			for _, r := range rs {
				ir.Routes = append(ir.Routes, apiRoute(r, names))
			}
		}
		for _, n := range s.iface.Networks {
			ir.Networks = append(ir.Networks, rr.networkRoute(n, addr, ir.Link, names))
		}
		out = append(out, ir)
	}
	return out
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// linkOf is the link holding addr; 0.0.0.0 and :: (any address) match none.
func (rr routeReader) linkOf(links []netlink.Link, addr netip.Addr) netlink.Link {
	if addr.IsUnspecified() {
		return nil
	}
	for _, l := range links {
		as, err := rr.h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			continue
		}
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr.Unmap() {
				return l
			}
		}
	}
	return nil
}

// networkRoute asks the kernel which route a packet from the side's
// address to the network's first address takes.
func (rr routeReader) networkRoute(cidr string, src netip.Addr, link string, names map[int]string) api.NetworkRoute {
	nr := api.NetworkRoute{Network: cidr}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		nr.Error = err.Error()
		return nr
	}
	dst := p.Masked().Addr()
	if p.Bits() < dst.BitLen() {
		dst = dst.Next() // a host inside, not the network address
	}
	opts := &netlink.RouteGetOptions{}
	if !src.IsUnspecified() && src.Is4() == dst.Is4() {
		opts.SrcAddr = net.IP(src.AsSlice())
	}
	rs, err := rr.h.RouteGetWithOptions(net.IP(dst.AsSlice()), opts)
	if err != nil || len(rs) == 0 {
		nr.Error = fmt.Sprintf("no route to %s: %v", dst, err)
		return nr
	}
	r := rs[0]
	nr.Device = names[r.LinkIndex]
	if r.Gw != nil {
		nr.Gateway = r.Gw.String()
	}
	if r.Src != nil {
		nr.Source = r.Src.String()
	}
	nr.SameLink = link != "" && nr.Device == link
	return nr
}

func apiRoute(r netlink.Route, names map[int]string) api.Route {
	out := api.Route{Device: names[r.LinkIndex], Metric: r.Priority, Table: tableName(r.Table), Protocol: r.Protocol.String()}
	switch {
	case r.Dst != nil:
		out.Destination = r.Dst.String()
	case r.Family == unix.AF_INET6:
		out.Destination = "::/0"
	default:
		out.Destination = "0.0.0.0/0"
	}
	if r.Gw != nil {
		out.Gateway = r.Gw.String()
	}
	if r.Src != nil {
		out.Source = r.Src.String()
	}
	return out
}

func tableName(t int) string {
	switch t {
	case unix.RT_TABLE_MAIN:
		return "main"
	case unix.RT_TABLE_LOCAL:
		return "local"
	case unix.RT_TABLE_DEFAULT:
		return "default"
	}
	return strconv.Itoa(t)
}

// routes is api.Deps.Routes: the running configuration's sides, read from
// the node's own namespace.
func (a *App) routes(context.Context) []api.InterfaceRoutes {
	h, err := netlink.NewHandle()
	if err != nil {
		return []api.InterfaceRoutes{{Interface: "all", Error: err.Error(), Routes: []api.Route{}, Networks: []api.NetworkRoute{}}}
	}
	defer h.Close()
	return routeReader{h}.routes(a.cur.Load().cfg)
}
