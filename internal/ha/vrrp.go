package ha

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// VRRP constants (RFC 9568 sections 5.1 and 5.2).
const (
	// Protocol is VRRP's IP protocol number.
	Protocol = 112
	// TTL is the IPv4 TTL or IPv6 hop limit every advertisement is sent
	// with; one received with another value is dropped (section 7.1).
	TTL = 255
	// Version is the VRRP version this package speaks.
	Version = 3
	// TypeAdvertisement is the only VRRP packet type.
	TypeAdvertisement = 1

	// PriorityStop is the priority a master sends when it gives the
	// virtual router up, so a backup takes over at once.
	PriorityStop = 0
	// PriorityOwner is the priority of the router that owns the addresses.
	PriorityOwner = 255

	headerLen = 8
	// MaxInterval is the largest advertisement interval, in centiseconds
	// (12 bits).
	MaxInterval = 0xfff
)

// Multicast groups advertisements are sent to.
var (
	GroupV4 = netip.MustParseAddr("224.0.0.18")
	GroupV6 = netip.MustParseAddr("ff02::12")
)

// Advert is one VRRPv3 advertisement.
type Advert struct {
	// VRID identifies the virtual router, 1..255.
	VRID uint8
	// Priority is the sender's priority: 0 gives the router up, 255 owns
	// the addresses.
	Priority uint8
	// Interval is the sender's advertisement interval in centiseconds,
	// 1..4095.
	Interval uint16
	// Addrs are the virtual router's addresses, all IPv4 or all IPv6.
	Addrs []netip.Addr
}

// Append appends the advertisement, with its checksum over the
// pseudo-header of src and dst (the IP source and destination it is sent
// with), to b.
func (a *Advert) Append(b []byte, src, dst netip.Addr) ([]byte, error) {
	if a.VRID == 0 {
		return b, fmt.Errorf("vrrp: vrid 0")
	}
	if a.Interval == 0 || a.Interval > MaxInterval {
		return b, fmt.Errorf("vrrp: interval %d centiseconds outside 1..%d", a.Interval, MaxInterval)
	}
	if len(a.Addrs) == 0 || len(a.Addrs) > 255 {
		return b, fmt.Errorf("vrrp: %d addresses (1..255)", len(a.Addrs))
	}
	v6 := is6(src)
	for _, ip := range a.Addrs {
		if is6(ip) != v6 {
			return b, fmt.Errorf("vrrp: address %s is not of the family of %s", ip, src)
		}
	}
	start := len(b)
	b = append(b, Version<<4|TypeAdvertisement, a.VRID, a.Priority, uint8(len(a.Addrs)))
	b = binary.BigEndian.AppendUint16(b, a.Interval&MaxInterval)
	b = append(b, 0, 0)
	for _, ip := range a.Addrs {
		ip = ip.Unmap()
		b = append(b, ip.AsSlice()...)
	}
	c := checksum(b[start:], src, dst, Protocol)
	binary.BigEndian.PutUint16(b[start+6:], c)
	return b, nil
}

// Parse reads the VRRP message b (the IP payload) received from src to
// dst. It checks the version, type, length and checksum; it does not
// check the TTL or who sent it (Router does).
func Parse(b []byte, src, dst netip.Addr) (Advert, error) {
	if len(b) < headerLen {
		return Advert{}, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	if v := b[0] >> 4; v != Version {
		return Advert{}, fmt.Errorf("%w: version %d", ErrVersion, v)
	}
	if t := b[0] & 0xf; t != TypeAdvertisement {
		return Advert{}, fmt.Errorf("%w: type %d", ErrType, t)
	}
	a := Advert{VRID: b[1], Priority: b[2], Interval: binary.BigEndian.Uint16(b[4:]) & MaxInterval}
	n := int(b[3])
	size := 4
	if is6(src) {
		size = 16
	}
	if n == 0 || len(b) < headerLen+n*size {
		return Advert{}, fmt.Errorf("%w: %d addresses of %d bytes in %d bytes", ErrShort, n, size, len(b))
	}
	b = b[:headerLen+n*size] // bytes past the addresses are not the message's
	if checksum(b, src, dst, Protocol) != 0 {
		return Advert{}, ErrChecksum
	}
	if a.VRID == 0 {
		return Advert{}, fmt.Errorf("%w: vrid 0", ErrField)
	}
	if a.Interval == 0 {
		return Advert{}, fmt.Errorf("%w: interval 0", ErrField)
	}
	a.Addrs = make([]netip.Addr, n)
	for i := range a.Addrs {
		p := b[headerLen+i*size : headerLen+(i+1)*size]
		if size == 4 {
			a.Addrs[i] = netip.AddrFrom4([4]byte(p))
		} else {
			a.Addrs[i] = netip.AddrFrom16([16]byte(p))
		}
	}
	return a, nil
}

// is6 reports whether a is an IPv6 address (not an IPv4-mapped one).
func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// checksum is the Internet checksum of msg and the IPv4 or IPv6
// pseudo-header with protocol proto (RFC 9568 section 5.2.8, RFC 4443
// section 2.3); over a message that holds its checksum it is 0 when the
// checksum is right.
func checksum(msg []byte, src, dst netip.Addr, proto uint32) uint16 {
	var sum uint32
	add := func(p []byte) {
		for len(p) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(p))
			p = p[2:]
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	src, dst = src.Unmap(), dst.Unmap()
	s, d := src.AsSlice(), dst.AsSlice()
	add(s)
	add(d)
	// IPv4: zero, protocol, length; IPv6: 32-bit length, zeros, next
	// header. Below 64 KiB both add the same words.
	sum += proto + uint32(len(msg))
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
