package ha

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Neighbour Discovery constants (RFC 4861 section 4.4).
const (
	// icmpv6 is ICMPv6's IPv6 next header.
	icmpv6 = 58
	// TypeNeighborAdvert is the ICMPv6 type of a Neighbor Advertisement.
	TypeNeighborAdvert = 136
	// naOverride is the Override flag: the receiver replaces the link-layer
	// address it has for the target.
	naOverride = 0x20
	// optTargetLLA is the Target Link-Layer Address option.
	optTargetLLA = 2
)

// AllNodes is the link-local all-nodes group unsolicited Neighbor
// Advertisements are sent to.
var AllNodes = netip.MustParseAddr("ff02::1")

// AppendUnsolicitedNA appends to b an unsolicited Neighbor Advertisement
// (RFC 4861 section 7.2.6) for target with the Ethernet address mac: the
// Override flag set, the Solicited and Router flags clear (a Portico node
// is a host), a Target Link-Layer Address option, and its checksum over
// the pseudo-header of src and dst (the IPv6 source and destination it is
// sent with, normally the interface's link-local address and AllNodes).
// It is sent with hop limit 255, as RFC 9568 section 6.4.2 asks of a new
// master for each IPv6 address.
func AppendUnsolicitedNA(b []byte, target netip.Addr, mac net.HardwareAddr, src, dst netip.Addr) ([]byte, error) {
	if !is6(target) || !is6(src) || !is6(dst) {
		return b, fmt.Errorf("neighbor advertisement: %s from %s to %s: not IPv6", target, src, dst)
	}
	if len(mac) != 6 {
		return b, fmt.Errorf("neighbor advertisement: %q is not an Ethernet address", mac)
	}
	start := len(b)
	b = append(b, TypeNeighborAdvert, 0, 0, 0, naOverride, 0, 0, 0)
	t := target.As16()
	b = append(b, t[:]...)
	b = append(b, optTargetLLA, 1)
	b = append(b, mac...)
	binary.BigEndian.PutUint16(b[start+2:], checksum(b[start:], src, dst, icmpv6))
	return b, nil
}
