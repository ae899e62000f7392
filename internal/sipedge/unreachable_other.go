//go:build !linux

package sipedge

import (
	"net"
	"net/netip"
)

// newICMPConn is nil where ICMP errors cannot be read per destination.
func newICMPConn(net.PacketConn, func(netip.AddrPort)) net.PacketConn { return nil }
