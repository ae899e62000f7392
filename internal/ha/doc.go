// Package ha holds Portico's high-availability pieces: the VRRP version 3
// advertisement (RFC 9568 section 5), its checksum over the IPv4 or IPv6
// pseudo-header, and the protocol's timers and election rules (RFC 9568
// section 6), so that two Portico nodes, or a Portico node and another
// VRRPv3 speaker such as keepalived, elect one owner for each virtual IP.
//
// The codec is pure: Parse and Append touch no socket. The election type
// Router decides from the advertisements it is given and the time it is
// told, and says what to do (send, take the addresses, give them up); the
// caller owns the socket, the clock and the addresses.
package ha
