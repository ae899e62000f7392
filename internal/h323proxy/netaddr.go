package h323proxy

import (
	"github.com/portico-edge/portico/internal/asn1per"
	"net"
	"net/netip"
)

func netUDP(ap netip.AddrPort) *net.UDPAddr { return net.UDPAddrFromAddrPort(ap) }

// bmp returns the text of a BMPString-typed identifier.
func bmp[T ~[]uint16](v T) string { return asn1per.BMPString(v).String() }
