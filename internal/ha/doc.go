// Package ha holds Portico's high-availability pieces: the VRRP version 3
// advertisement (RFC 9568 section 5), its checksum over the IPv4 or IPv6
// pseudo-header, and the protocol's timers and election rules (RFC 9568
// section 6), so that two Portico nodes, or a Portico node and another
// VRRPv3 speaker such as keepalived, elect one owner for each virtual IP.
//
// On the wire (speaker_linux.go) an IPv4 group advertises to 224.0.0.18
// and announces its VIPs by gratuitous ARP; an IPv6 group advertises to
// ff02::12 from the interface's link-local address and announces its VIPs
// by unsolicited Neighbor Advertisements (RFC 4861 section 7.2.6, built by
// AppendUnsolicitedNA).
//
// The codec is pure: Parse and Append touch no socket. The election type
// Router decides from the advertisements it is given and the time it is
// told, and says what to do (send, take the addresses, give them up); the
// caller owns the socket, the clock and the addresses.
package ha
