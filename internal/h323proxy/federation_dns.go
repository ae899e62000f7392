package h323proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/portico-edge/portico/internal/h323/h225"
)

// aliasDomain returns the domain of the first alias@domain in names.
func aliasDomain(names []string) string {
	for _, a := range names {
		if at := strings.LastIndexByte(a, '@'); at >= 0 && at < len(a)-1 {
			return strings.ToLower(strings.TrimSuffix(a[at+1:], "."))
		}
	}
	return ""
}

// resolver is the DNS resolver of federation.dns_server, or the system's.
// Callers hold s.mu.
func (s *Server) resolver() *net.Resolver {
	srv := s.cfg.DNSServer
	if !srv.IsValid() {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.String())
	}}
}

// locateByDNS sends out, the inside gatekeeper's LRQ (from src, sequence
// number seq) for an alias@domain no neighbour serves, to the gatekeeper
// that domain's _h323ls._udp SRV record names; when there is none, the
// inside gets LRJ notRegistered. It runs on its own goroutine (s.wg).
func (s *Server) locateByDNS(src netip.AddrPort, seq h225.RequestSeqNum, names []string, domain string, out *h225.LocationRequest) {
	defer s.wg.Done()
	s.mu.Lock()
	r, timeout := s.resolver(), s.cfg.RequestTimeout
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	dst, err := lookupLS(ctx, r, domain)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.log.Debug("locate by DNS", "domain", domain, "err", err)
		s.send(Internal, src, &h225.RasMessage{Choice: h225.RasMessage_LocationReject, LocationReject: &h225.LocationReject{
			RequestSeqNum: seq, RejectReason: h225.LocationRejectReason{Choice: h225.LocationRejectReason_NotRegistered}}})
		return
	}
	p := &pending{kind: h225.RasMessage_LocationRequest, from: src, seq: seq, neighbour: dst, names: names}
	n, ok := s.track(false, p)
	if !ok {
		s.m.dropped.WithLabelValues(Internal, "pending_full").Inc()
		return
	}
	out.RequestSeqNum = n
	p.sent = s.send(External, dst, &h225.RasMessage{Choice: h225.RasMessage_LocationRequest, LocationRequest: out})
}

// lookupLS resolves domain's H.323 location service: the first
// _h323ls._udp SRV target (by priority and weight) and its IPv4 address.
func lookupLS(ctx context.Context, r *net.Resolver, domain string) (netip.AddrPort, error) {
	return lookupSRV(ctx, r, "h323ls", domain, "ip4")
}

// lookupSRV returns the first target of domain's _service._udp SRV
// records (by priority and weight) that has an address of network ("ip4"
// or "ip6"), with the record's port; ErrNoLocation when none has.
func lookupSRV(ctx context.Context, r *net.Resolver, service, domain, network string) (netip.AddrPort, error) {
	_, srvs, err := r.LookupSRV(ctx, service, "udp", domain)
	if err != nil {
		return netip.AddrPort{}, err
	}
	for _, srv := range srvs {
		if srv.Target == "." || srv.Port == 0 {
			continue
		}
		ips, err := r.LookupNetIP(ctx, network, strings.TrimSuffix(srv.Target, "."))
		if err != nil || len(ips) == 0 {
			continue
		}
		return netip.AddrPortFrom(ips[0].Unmap(), srv.Port), nil
	}
	return netip.AddrPort{}, ErrNoLocation
}

// lookupZoneServer resolves a traversal zone's server name: with port
// 0, its _h323rs._udp SRV record (H.225.0 Annex O) first; else, or
// without one, its first address of network and port (1719 if 0).
func lookupZoneServer(ctx context.Context, r *net.Resolver, host string, port uint16, network string) (netip.AddrPort, error) {
	if port == 0 {
		if ap, err := lookupSRV(ctx, r, "h323rs", host, network); err == nil {
			return ap, nil
		}
		port = DefaultRASPort
	}
	ips, err := r.LookupNetIP(ctx, network, host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("no %s address", network)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), port), nil
}
