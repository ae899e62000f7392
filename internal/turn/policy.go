package turn

import (
	"fmt"
	"net"
	"net/netip"
)

// builtinDenied are never relayed to unless an Allow prefix at least as
// specific names them (RFC 8656 §21.3: a TURN server must not become an
// open door into the networks it can reach).
var builtinDenied = []string{
	"0.0.0.0/8",       // "this" network, unspecified
	"10.0.0.0/8",      // RFC 1918
	"100.64.0.0/10",   // RFC 6598 shared address space (CGN)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local
	"172.16.0.0/12",   // RFC 1918
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"192.168.0.0/16",  // RFC 1918
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, broadcast
	"::/128",          // unspecified
	"::1/128",         // loopback
	"fc00::/7",        // unique local
	"fe80::/10",       // link-local
	"fec0::/10",       // site-local (deprecated)
	"ff00::/8",        // multicast
	"64:ff9b:1::/48",  // local-use NAT64
	"2001:db8::/32",   // documentation
	"100::/64",        // discard-only
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

type rule struct {
	prefix netip.Prefix
	allow  bool
	rank   int // breaks ties between equally specific prefixes
}

// Ranks: an Allow prefix beats an equal built-in one; a configured Inside or
// Deny prefix beats an equal Allow one.
const (
	rankBuiltin = iota
	rankAllow
	rankConfigured
)

// peerPolicy is immutable once built; safe for concurrent use.
type peerPolicy struct {
	rules []rule
}

func newPeerPolicy(p PeerPolicy) (*peerPolicy, []FieldError) {
	var errs []FieldError
	pp := &peerPolicy{}
	for _, s := range builtinDenied {
		pp.rules = append(pp.rules, rule{prefix: netip.MustParsePrefix(s), rank: rankBuiltin})
	}
	add := func(field string, list []string, allow bool, rank int) {
		for i, s := range list {
			pf, err := netip.ParsePrefix(s)
			if err != nil {
				if a, aerr := netip.ParseAddr(s); aerr == nil {
					pf = netip.PrefixFrom(a, a.BitLen())
				} else {
					errs = append(errs, FieldError{Path: fmt.Sprintf("peers.%s[%d]", field, i), Reason: fmt.Sprintf("%q is not a CIDR prefix", s)})
					continue
				}
			}
			pf = pf.Masked()
			if pf.Addr().Is4In6() {
				pf = netip.PrefixFrom(pf.Addr().Unmap(), max(pf.Bits()-96, 0))
			}
			pp.rules = append(pp.rules, rule{prefix: pf, allow: allow, rank: rank})
		}
	}
	add("inside", p.Inside, false, rankConfigured)
	add("deny", p.Deny, false, rankConfigured)
	add("allow", p.Allow, true, rankAllow)
	return pp, errs
}

// permits reports whether a client may relay to peer.
func (p *peerPolicy) permits(peer netip.Addr) bool {
	if !peer.IsValid() {
		return false
	}
	peer = peer.Unmap().WithZone("")
	// A NAT64 address reaches the IPv4 address embedded in it.
	if peer.Is6() && nat64.Contains(peer) {
		b := peer.As16()
		if !p.permits(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})) {
			return false
		}
	}
	best, bestRank, allowed := -1, -1, true
	for _, r := range p.rules {
		if !r.prefix.Contains(peer) {
			continue
		}
		bits := r.prefix.Bits()
		if bits > best || (bits == best && r.rank > bestRank) {
			best, bestRank, allowed = bits, r.rank, r.allow
		}
	}
	return allowed
}

// permitsIP adapts permits to net.IP.
func (p *peerPolicy) permitsIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	return p.permits(a)
}
