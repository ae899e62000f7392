package h245proxy

import (
	"net/netip"

	"github.com/portico-edge/portico/internal/h323/h245"
)

// unicastAddrPort returns the IP address and port of an H.245 unicast
// transport address. (A private twin of the codec's planned
// h245.UnicastAddrPort; replace when that lands.)
func unicastAddrPort(t *h245.TransportAddress) (netip.AddrPort, bool) {
	if t == nil || t.Choice != h245.TransportAddress_UnicastAddress || t.UnicastAddress == nil {
		return netip.AddrPort{}, false
	}
	u := t.UnicastAddress
	switch {
	case u.Choice == h245.UnicastAddress_IPAddress && u.IPAddress != nil:
		a, ok := netip.AddrFromSlice(u.IPAddress.Network)
		if !ok || !a.Is4() {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(a, uint16(u.IPAddress.TsapIdentifier)), true
	case u.Choice == h245.UnicastAddress_IP6Address && u.IP6Address != nil:
		a, ok := netip.AddrFromSlice(u.IP6Address.Network)
		if !ok || !a.Is6() {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(a, uint16(u.IP6Address.TsapIdentifier)), true
	}
	return netip.AddrPort{}, false
}

// newTransportAddress returns the H.245 unicast transport address of ap.
func newTransportAddress(ap netip.AddrPort) *h245.TransportAddress {
	a := ap.Addr().Unmap()
	if a.Is4() {
		// One allocation instead of four: every fastStart element and
		// OpenLogicalChannel(Ack) a call carries gets two of these.
		x := &struct {
			t  h245.TransportAddress
			u  h245.UnicastAddress
			ip h245.UnicastAddressIPAddress
			b  [4]byte
		}{}
		x.b = a.As4()
		x.ip = h245.UnicastAddressIPAddress{Network: x.b[:], TsapIdentifier: int64(ap.Port())}
		x.u = h245.UnicastAddress{Choice: h245.UnicastAddress_IPAddress, IPAddress: &x.ip}
		x.t = h245.TransportAddress{Choice: h245.TransportAddress_UnicastAddress, UnicastAddress: &x.u}
		return &x.t
	}
	ip := a.As16()
	u := &h245.UnicastAddress{Choice: h245.UnicastAddress_IP6Address,
		IP6Address: &h245.UnicastAddressIP6Address{Network: ip[:], TsapIdentifier: int64(ap.Port())}}
	return &h245.TransportAddress{Choice: h245.TransportAddress_UnicastAddress, UnicastAddress: u}
}
