package h323proxy

import (
	"net/netip"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// Neighbour is an outside gatekeeper Portico federates with (GnuGk's
// neighbour): its LRQs are answered (through the inside gatekeeper) with
// Portico's address, and the inside gatekeeper's LRQs for aliases it
// serves are sent to it.
type Neighbour struct {
	// Name labels it in logs and docs.
	Name string
	// RAS is its RAS address; LRQs from its IP are accepted.
	RAS netip.AddrPort
	// Prefixes are the alias prefixes it serves (E.164 digits or
	// H.323-ID starts); Domains the domains of alias@domain aliases.
	Prefixes, Domains []string
}

// serves reports whether alias belongs to n.
func (n *Neighbour) serves(alias string) bool {
	for _, p := range n.Prefixes {
		if p != "" && strings.HasPrefix(alias, p) {
			return true
		}
	}
	if at := strings.LastIndexByte(alias, '@'); at >= 0 {
		for _, d := range n.Domains {
			if strings.EqualFold(alias[at+1:], d) {
				return true
			}
		}
	}
	return false
}

// fedRouteTTL is how long a neighbour's LCF routes a Setup from inside
// for the located alias.
const fedRouteTTL = 60 * time.Second

// fedRoute is where a neighbour's LCF said an alias is reached.
type fedRoute struct {
	signal  netip.AddrPort
	expires time.Time
}

// neighbourAt returns the neighbour whose RAS address has ip, or nil.
// Callers hold s.mu.
func (s *Server) neighbourAt(ip netip.Addr) *Neighbour {
	ip = ip.Unmap()
	for i := range s.cfg.Neighbours {
		if s.cfg.Neighbours[i].RAS.Addr().Unmap() == ip {
			return &s.cfg.Neighbours[i]
		}
	}
	return nil
}

// neighbourFor returns the first neighbour serving one of names, or nil.
func (s *Server) neighbourFor(names []string) *Neighbour {
	for i := range s.cfg.Neighbours {
		for _, a := range names {
			if s.cfg.Neighbours[i].serves(a) {
				return &s.cfg.Neighbours[i]
			}
		}
	}
	return nil
}

// locationAllowed reports whether an LRQ from src may be relayed inside:
// it comes from a neighbour, from an endpoint registered through Portico,
// or federation is open (open_b2b). Callers hold s.mu.
func (s *Server) locationAllowed(src netip.AddrPort) bool {
	ip := src.Addr().Unmap()
	if s.cfg.OpenB2B || s.neighbourAt(ip) != nil {
		return true
	}
	for _, r := range s.regs.byOut {
		if r.src.Addr().Unmap() == ip {
			return true
		}
	}
	return false
}

// refuseLocation answers an LRQ from a source that is no neighbour with
// LRJ requestDenied and scores it.
func (s *Server) refuseLocation(src netip.AddrPort, q *h225.LocationRequest) {
	s.m.dropped.WithLabelValues(External, "not_neighbour").Inc()
	s.observe(src.Addr().Unmap(), guard.Forbidden)
	s.send(External, src, ras.LRJ(q, h225.LocationRejectReason_RequestDenied))
}

// federatedSource records that src's LRQ was confirmed: a Setup from its
// IP is then a federated call (open_b2b admits sources that are no
// configured neighbour). Callers hold s.mu.
func (s *Server) federatedSource(p *pending) {
	if !p.from.IsValid() || p.reg != nil || p.kind != h225.RasMessage_LocationRequest {
		return
	}
	now := s.now()
	if len(s.fedPeers) >= s.cfg.MaxPending*4 {
		for a, exp := range s.fedPeers {
			if now.After(exp) {
				delete(s.fedPeers, a)
			}
		}
		if len(s.fedPeers) >= s.cfg.MaxPending*4 {
			return
		}
	}
	s.fedPeers[p.from.Addr().Unmap()] = now.Add(fedRouteTTL)
}

// federated reports whether a call from ip comes from a neighbour (or a
// source whose LRQ Portico just confirmed). Callers hold s.mu.
func (s *Server) federated(ip netip.Addr) bool {
	ip = ip.Unmap()
	if s.neighbourAt(ip) != nil {
		return true
	}
	exp, ok := s.fedPeers[ip]
	return ok && !s.now().After(exp)
}

// insideLocate handles an LRQ from the inside gatekeeper (Portico is
// its neighbour): an alias a neighbour serves is located there, anything
// else is rejected notRegistered.
func (s *Server) insideLocate(src netip.AddrPort, q *h225.LocationRequest) {
	names := aliasNames(q.DestinationInfo)
	if zc := s.zoneFor(names); zc != nil {
		s.zoneLocate(src, q, zc)
		return
	}
	n := s.neighbourFor(names)
	domain := aliasDomain(names)
	if n == nil && (!s.cfg.OpenB2B || domain == "") {
		s.send(Internal, src, ras.LRJ(q, h225.LocationRejectReason_NotRegistered))
		return
	}
	if q.HasHopCount && q.HopCount <= 1 {
		s.send(Internal, src, ras.LRJ(q, h225.LocationRejectReason_HopCountExceeded))
		return
	}
	for _, p := range s.pendingOut {
		if p.kind == h225.RasMessage_LocationRequest && p.from == src && p.seq == q.RequestSeqNum {
			// The gatekeeper repeats an LRQ still in flight: repeat it
			// to the same neighbour under the same sequence number.
			if p.sent != nil {
				s.write(External, p.neighbour, p.sent)
			}
			return
		}
	}
	if n == nil {
		// open_b2b: the domain's location service, found in DNS.
		if s.ctx.Err() != nil {
			return
		}
		s.wg.Add(1)
		go s.locateByDNS(src, q.RequestSeqNum, names, domain, s.outsideLRQ(q))
		return
	}
	p := &pending{kind: h225.RasMessage_LocationRequest, from: src, seq: q.RequestSeqNum, neighbour: n.RAS, names: names}
	seq, ok := s.track(false, p)
	if !ok {
		s.m.dropped.WithLabelValues(Internal, "pending_full").Inc()
		return
	}
	out := s.outsideLRQ(q)
	out.RequestSeqNum = seq
	p.sent = s.send(External, n.RAS, &h225.RasMessage{Choice: h225.RasMessage_LocationRequest, LocationRequest: out})
}

// outsideLRQ builds the LRQ sent to a neighbour for the inside's q from
// an allow-list: the aliases asked for and Portico's outside RAS address,
// nothing of the inside's. The caller sets the sequence number.
func (s *Server) outsideLRQ(q *h225.LocationRequest) *h225.LocationRequest {
	out := &h225.LocationRequest{
		DestinationInfo: cloneAliases(q.DestinationInfo),
		ReplyAddress:    ras.Transport(s.extAddr),
		SourceInfo:      cloneAliases(q.SourceInfo), HasSourceInfo: len(q.SourceInfo) > 0,
		HasCanMapAlias: true, HasCanMapSrcAlias: true,
	}
	if q.HasHopCount { // each gatekeeper crossed counts, so LRQs cannot loop between neighbours
		out.HopCount, out.HasHopCount = q.HopCount-1, true
	}
	return out
}

// neighbourAnswer relays a neighbour's LCF or LRJ to the inside
// gatekeeper's LRQ: an LCF names Portico's inside call-signalling
// address, and the neighbour's is kept to route the Setup that follows.
func (s *Server) neighbourAnswer(src netip.AddrPort, m *h225.RasMessage) {
	seq, _ := ras.SeqNum(m)
	p := s.pendingOut[uint16(seq)]
	if p == nil || p.kind != h225.RasMessage_LocationRequest || p.neighbour.Addr().Unmap() != src.Addr().Unmap() {
		s.m.dropped.WithLabelValues(External, "unmatched").Inc()
		return
	}
	s.untrack(s.pendingOut, uint16(seq))
	var out *h225.RasMessage
	switch m.Choice {
	case h225.RasMessage_LocationConfirm:
		l := m.LocationConfirm
		dst, err := ras.AddrPort(&l.CallSignalAddress)
		if err != nil || !dst.IsValid() || dst.Port() == 0 || s.isPortico(dst.Addr()) {
			// A call would loop through Portico itself (or reach its
			// inside): refused.
			out = &h225.RasMessage{Choice: h225.RasMessage_LocationReject, LocationReject: &h225.LocationReject{RequestSeqNum: p.seq,
				RejectReason: h225.LocationRejectReason{Choice: h225.LocationRejectReason_UndefinedReason}}}
			break
		}
		s.addFedRoutes(p.names, dst)
		dest := cloneAliases(l.DestinationInfo)
		out = &h225.RasMessage{Choice: m.Choice, LocationConfirm: &h225.LocationConfirm{
			RequestSeqNum:     p.seq,
			CallSignalAddress: ras.Transport(s.cfg.InternalSignal),
			RasAddress:        ras.Transport(s.inAddr),
			DestinationInfo:   dest, HasDestinationInfo: len(dest) > 0,
		}}
	case h225.RasMessage_LocationReject:
		r := m.LocationReject.RejectReason
		out = &h225.RasMessage{Choice: m.Choice, LocationReject: &h225.LocationReject{RequestSeqNum: p.seq,
			RejectReason: h225.LocationRejectReason{Choice: rawSafe(r.Choice, r.Raw, h225.LocationRejectReason_UndefinedReason)}}}
	}
	s.send(Internal, p.from, out)
}

// isPortico reports whether a is one of Portico's own addresses.
func (s *Server) isPortico(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsUnspecified() || a == s.extAddr.Addr().Unmap() || a == s.cfg.PublicAddress.Unmap() ||
		a == s.cfg.ExternalRAS.Addr().Unmap() || a == s.cfg.InternalSignal.Addr().Unmap() || a == s.inAddr.Addr().Unmap()
}

// addFedRoutes remembers that names are reached at dst (bounded; expired
// routes are dropped when the table is full). Callers hold s.mu.
func (s *Server) addFedRoutes(names []string, dst netip.AddrPort) {
	now := s.now()
	max := s.cfg.MaxPending * 4
	if len(s.fedRoutes)+len(names) > max {
		for a, r := range s.fedRoutes {
			if now.After(r.expires) {
				delete(s.fedRoutes, a)
			}
		}
	}
	for _, a := range names {
		if len(s.fedRoutes) >= max {
			return
		}
		s.fedRoutes[a] = fedRoute{signal: dst, expires: now.Add(fedRouteTTL)}
	}
}

// neighbourRoute returns the neighbour's call-signalling address an LCF
// gave for alias, as an Endpoint the call-signalling proxy dials.
func (s *Server) neighbourRoute(alias string) (Endpoint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.fedRoutes[alias]
	if !ok || s.now().After(r.expires) {
		return Endpoint{}, false
	}
	return Endpoint{Alias: alias, CallSignal: r.signal}, true
}
