package h323proxy

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/store"
)

// H46018KeepAliveInterval is H.460.18's keepAliveInterval parameter (a
// TimeToLive, in the RCF's H.460.18 feature).
const H46018KeepAliveInterval = 2

// pending is a request Portico relayed and waits for the answer to.
type pending struct {
	kind    int            // the request's RasMessage alternative
	from    netip.AddrPort // who asked (outside binding or the gatekeeper); invalid for Portico's own
	seq     h225.RequestSeqNum
	reg     *registration // the registration concerned, if any
	h46018  bool          // RRQ: the endpoint offered H.460.18
	h46019  bool          // RRQ: ... and H.460.19, confirmed
	mux19   bool          // RRQ: ... with supportTransmitMultiplexedMedia
	refresh bool          // Portico's own keep-alive RRQ
	rrq     *h225.RegistrationRequest
	scr     chan struct{} // SCI: closed when the SCR arrived
	callID  []byte        // ARQ, DRQ: the call's identifier (16 octets), if given
	dest    []string      // ARQ: the aliases admission was asked for
	sent    []byte        // what Portico sent, resent for a retransmission
	// neighbour is the neighbour an inside LRQ was sent to, names the
	// aliases it asked for.
	neighbour netip.AddrPort
	names     []string
	expires   time.Time
	// kaSignal and kaH245: RRQ, the endpoint's keep-alive methods.
	kaSignal, kaH245 KeepAliveMethod
}

// handleExternal handles one datagram from outside.
func (s *Server) handleExternal(src netip.AddrPort, b []byte) {
	ip := src.Addr().Unmap()
	if s.acl != nil && !s.acl.Allow(ip) {
		s.m.dropped.WithLabelValues(External, "acl").Inc()
		return
	}
	if s.deps.Guard != nil && s.deps.Guard.Blocked(ip) {
		s.m.dropped.WithLabelValues(External, "blocked").Inc()
		return
	}
	m, err := ras.Parse(b)
	if err != nil {
		s.m.dropped.WithLabelValues(External, "malformed").Inc()
		s.observe(ip, guard.Malformed)
		return
	}
	s.m.received.WithLabelValues(External, ras.Name(m)).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.extInfo != nil {
		s.noteLocal(src, s.rxLocal)
	}
	if m.Choice != h225.RasMessage_GatekeeperRequest && ras.IsRequest(m) && s.retransmitted(src, m) {
		return
	}
	switch m.Choice {
	case h225.RasMessage_GatekeeperRequest:
		s.gatekeeperRequest(src, m.GatekeeperRequest)
	case h225.RasMessage_RegistrationRequest:
		if r := m.RegistrationRequest; r != nil && !(r.HasKeepAlive && r.KeepAlive) {
			s.observe(ip, guard.Register)
		}
		s.registrationRequest(src, m)
	case h225.RasMessage_UnregistrationRequest:
		s.outsideUnregister(src, m)
	case h225.RasMessage_LocationRequest:
		if !s.locationAllowed(src) {
			s.refuseLocation(src, m.LocationRequest)
			return
		}
		if q := m.LocationRequest; q.HasHopCount {
			if q.HopCount <= 1 {
				s.send(External, src, ras.LRJ(q, h225.LocationRejectReason_HopCountExceeded))
				return
			}
			q.HopCount--
		}
		s.relayInside(src, m)
	case h225.RasMessage_AdmissionRequest, h225.RasMessage_BandwidthRequest, h225.RasMessage_DisengageRequest,
		h225.RasMessage_InfoRequestResponse:
		s.relayInside(src, m)
	case h225.RasMessage_LocationConfirm, h225.RasMessage_LocationReject:
		s.neighbourAnswer(src, m)
	case h225.RasMessage_UnregistrationConfirm, h225.RasMessage_UnregistrationReject,
		h225.RasMessage_DisengageConfirm, h225.RasMessage_DisengageReject,
		h225.RasMessage_ServiceControlResponse:
		s.outsideAnswer(src, m)
	default:
		s.m.dropped.WithLabelValues(External, "unsupported").Inc()
	}
}

// observe scores src with the guard (ignoring whether it is now blocked:
// the next datagram is dropped in the read path).
func (s *Server) observe(src netip.Addr, k guard.Kind) {
	if s.deps.Guard != nil {
		s.deps.Guard.Observe(src, k)
	}
}

// send encodes m and writes it on c to dst; an encoding failure is a bug
// in a rewrite and is logged.
func (s *Server) send(side string, dst netip.AddrPort, m *h225.RasMessage) []byte {
	b, err := m.Marshal()
	if err != nil {
		s.log.Error("encode", "message", ras.Name(m), "err", err)
		return nil
	}
	s.write(side, dst, b)
	return b
}

func (s *Server) write(side string, dst netip.AddrPort, b []byte) {
	if hook := s.writeHook.Load(); hook != nil && b != nil {
		(*hook)(side, dst, b)
	}
	c := s.ext
	if side == Internal {
		c = s.in
	}
	if c == nil || b == nil {
		return
	}
	if side == External && s.extInfo != nil {
		if l, ok := s.locals[dst]; ok {
			s.extInfo.write(b, l, netUDP(dst))
			return
		}
	}
	_, _ = c.WriteTo(b, netUDP(dst))
}

// dupKey identifies an outside request for retransmission detection.
type dupKey struct {
	src  netip.AddrPort
	kind int
	seq  h225.RequestSeqNum
}

// retransmitted resends, when m repeats a request still waiting for the
// inside, what Portico sent for it, and reports whether it did.
func (s *Server) retransmitted(src netip.AddrPort, m *h225.RasMessage) bool {
	seq, ok := ras.SeqNum(m)
	if !ok {
		return false
	}
	in, ok := s.dups[dupKey{src, m.Choice, h225.RequestSeqNum(seq)}]
	if !ok {
		return false
	}
	if p := s.pendingIn[in]; p != nil && p.sent != nil {
		s.write(Internal, s.cfg.Gatekeeper, p.sent)
	}
	return true
}

// nextSeq returns Portico's next requestSeqNum not in use in p.
func (s *Server) nextSeq(p map[uint16]*pending) h225.RequestSeqNum {
	for {
		s.seq++
		if s.seq == 0 {
			continue
		}
		if p[s.seq] == nil {
			return h225.RequestSeqNum(s.seq)
		}
	}
}

// track records p under a fresh sequence number among the requests sent
// inside (in) or outside; it reports false when that side has MaxPending
// requests in flight, or p's outside source its share.
func (s *Server) track(in bool, p *pending) (h225.RequestSeqNum, bool) {
	side := s.pendingOut
	if in {
		side = s.pendingIn
	}
	if len(side) >= s.cfg.MaxPending {
		s.expirePending(s.now())
		if len(side) >= s.cfg.MaxPending {
			return 0, false
		}
	}
	outside := p.from.IsValid() && p.from.Addr() != s.cfg.Gatekeeper.Addr()
	if outside && s.perSource[p.from.Addr()] >= maxPendingPerSource {
		return 0, false
	}
	seq := s.nextSeq(side)
	p.expires = s.now().Add(s.cfg.RequestTimeout)
	side[uint16(seq)] = p
	if outside {
		s.perSource[p.from.Addr()]++
		if in && p.kind != h225.RasMessage_InfoRequestResponse {
			s.dups[dupKey{p.from, p.kind, p.seq}] = uint16(seq)
		}
	}
	return seq, true
}

// untrack forgets the request Portico sent under seq toward a side.
func (s *Server) untrack(side map[uint16]*pending, seq uint16) {
	p := side[seq]
	if p == nil {
		return
	}
	delete(side, seq)
	if k := (dupKey{p.from, p.kind, p.seq}); s.dups[k] == seq {
		delete(s.dups, k)
	}
	if a := p.from.Addr(); p.from.IsValid() && a != s.cfg.Gatekeeper.Addr() {
		if s.perSource[a]--; s.perSource[a] <= 0 {
			delete(s.perSource, a)
		}
	}
}

func (s *Server) outsideGK() h225.GatekeeperIdentifier {
	return h225.GatekeeperIdentifier(asn1per.BMP(s.cfg.OutsideGatekeeperID))
}

func (s *Server) extSignal() netip.AddrPort {
	return netip.AddrPortFrom(s.extAddr.Addr(), s.cfg.ExternalSignalPort)
}

func offers(fs *h225.FeatureSet, gd []h225.GenericData, id int64) bool {
	return ras.FeatureIn(fs, id) != nil || ras.Generic(gd, id) != nil
}

// mediaTraversal reports whether H.460.19 is offered and confirmed (with
// H.460.18, which the caller checks).
func (s *Server) mediaTraversal(fs *h225.FeatureSet, gd []h225.GenericData) bool {
	return s.cfg.MediaTraversal && offers(fs, gd, ras.H46019)
}

// transmitsMultiplexed reports whether an offered H.460.19 carries
// supportTransmitMultiplexedMedia.
func transmitsMultiplexed(fs *h225.FeatureSet, gd []h225.GenericData) bool {
	f := ras.FeatureIn(fs, ras.H46019)
	if f == nil {
		f = ras.Generic(gd, ras.H46019)
	}
	return ras.Param(f, ras.H46019TransmitMultiplexed) != nil
}

// traversalFeatures returns the features of a GCF or RCF confirming
// H.460.18 (with params) and, when h46019, H.460.19 with Portico as
// mediaTraversalServer that can transmit multiplexed media.
func (s *Server) traversalFeatures(h46019 bool, params ...h225.EnumeratedParameter) []h225.GenericData {
	fs := []h225.GenericData{ras.Feature(ras.H46018, params...)}
	if h46019 {
		fs = append(fs, ras.Feature(ras.H46019, ras.Flag(ras.H46019TraversalServer), ras.Flag(ras.H46019TransmitMultiplexed)))
	}
	return fs
}

// gatekeeperRequest answers a GRQ itself: Portico is the outside's
// gatekeeper. H.460.18 is confirmed when offered and enabled; H.460.23
// and .24 are left out, which tells the endpoint they are not supported.
func (s *Server) gatekeeperRequest(src netip.AddrPort, req *h225.GatekeeperRequest) {
	if req == nil {
		return
	}
	if req.HasGatekeeperIdentifier && bmp(req.GatekeeperIdentifier) != s.cfg.OutsideGatekeeperID {
		s.send(External, src, ras.GRJ(req, h225.GatekeeperRejectReason_TerminalExcluded))
		return
	}
	m := ras.GCF(req, s.cfg.OutsideGatekeeperID, s.extAddr)
	if s.cfg.Traversal && offers(req.FeatureSet, req.GenericData, ras.H46018) {
		m.GatekeeperConfirm.FeatureSet = ras.Supported(s.traversalFeatures(s.mediaTraversal(req.FeatureSet, req.GenericData))...)
	}
	s.send(External, src, m)
}

// registrationRequest handles an outside RRQ: keep-alives are answered
// here; full ones are relayed inside with Portico's addresses.
func (s *Server) registrationRequest(src netip.AddrPort, m *h225.RasMessage) {
	req := m.RegistrationRequest
	if req == nil {
		return
	}
	if req.HasKeepAlive && req.KeepAlive {
		r := s.regs.byOut[bmp(req.EndpointIdentifier)]
		// A keep-alive may follow a NAT rebinding to a new port, never to
		// a new address: the endpoint identifier crossed the Internet in
		// clear, and whoever holds it must not take over the endpoint's
		// incoming calls (SCI) with one datagram. From elsewhere the
		// endpoint registers in full, which the inside gatekeeper judges.
		if !req.HasEndpointIdentifier || r == nil || r.src.Addr() != src.Addr() {
			s.send(External, src, s.rrj(req.RequestSeqNum, h225.RegistrationRejectReason{Choice: h225.RegistrationRejectReason_FullRegistrationRequired}))
			return
		}
		r.src = src
		r.expires = s.now().Add(s.ttl(r))
		s.send(External, src, s.rcf(req.RequestSeqNum, r))
		return
	}
	var existing *registration
	names := aliasNames(req.TerminalAlias)
	for _, n := range names {
		if r := s.regs.byAlias[n]; r != nil && r.src == src {
			existing = r
		}
	}
	if existing == nil && s.regs.full() {
		s.m.regEvents.WithLabelValues("rejected").Inc()
		s.history(src, names, "rejected", 0, "table full: resource unavailable")
		s.send(External, src, s.rrj(req.RequestSeqNum, h225.RegistrationRejectReason{Choice: h225.RegistrationRejectReason_ResourceUnavailable}))
		return
	}
	p := &pending{kind: m.Choice, from: src, seq: req.RequestSeqNum, reg: existing,
		h46018: s.cfg.Traversal && offers(req.FeatureSet, req.GenericData, ras.H46018)}
	p.h46019 = p.h46018 && s.mediaTraversal(req.FeatureSet, req.GenericData)
	p.mux19 = p.h46019 && transmitsMultiplexed(req.FeatureSet, req.GenericData)
	p.rrq = copyRRQ(req)
	p.kaSignal, p.kaH245 = s.keepAliveFor(&req.EndpointVendor)
	seq, ok := s.track(true, p)
	if !ok {
		s.m.dropped.WithLabelValues(External, "pending_full").Inc()
		return
	}
	if existing == nil {
		s.regs.reserved++
	}
	out := *req
	out.RequestSeqNum = seq
	out.CallSignalAddress = []h225.TransportAddress{ras.Transport(s.cfg.InternalSignal)}
	out.RasAddress = []h225.TransportAddress{ras.Transport(s.inAddr)}
	s.insideGK(&out.GatekeeperIdentifier, &out.HasGatekeeperIdentifier)
	out.DiscoveryComplete = out.HasGatekeeperIdentifier
	out.EndpointIdentifier, out.HasEndpointIdentifier = nil, false
	if existing != nil {
		out.EndpointIdentifier, out.HasEndpointIdentifier = h225.EndpointIdentifier(asn1per.BMP(existing.insideID)), true
	}
	out.AlternateEndpoints, out.HasAlternateEndpoints = nil, false
	out.AlternateTransportAddresses = nil
	out.FeatureSet, out.GenericData, out.HasGenericData = nil, stripTraversal(out.GenericData), false
	out.HasGenericData = len(out.GenericData) > 0
	out.AssignedGatekeeper = nil
	p.sent = s.send(Internal, s.cfg.Gatekeeper, &h225.RasMessage{Choice: m.Choice, RegistrationRequest: &out})
}

// copyRRQ keeps what the RCF needs of an RRQ once its buffer is reused.
func copyRRQ(req *h225.RegistrationRequest) *h225.RegistrationRequest {
	cs := make([]h225.TransportAddress, len(req.CallSignalAddress))
	for i := range req.CallSignalAddress {
		if ap, err := ras.AddrPort(&req.CallSignalAddress[i]); err == nil {
			cs[i] = ras.Transport(ap)
		}
	}
	return &h225.RegistrationRequest{CallSignalAddress: cs, TerminalAlias: cloneAliases(req.TerminalAlias)}
}

// cloneAliases deep-copies the text aliases (the decoded ones alias the
// read buffer); other kinds are dropped.
func cloneAliases(as []h225.AliasAddress) []h225.AliasAddress {
	var out []h225.AliasAddress
	for i := range as {
		a := as[i]
		switch a.Choice {
		case h225.AliasAddress_H323ID:
			out = append(out, ras.H323ID(a.H323ID.String()))
		case h225.AliasAddress_DialledDigits:
			out = append(out, ras.E164(strings.Clone(a.DialledDigits)))
		case h225.AliasAddress_UrlID:
			out = append(out, ras.URL(strings.Clone(a.UrlID)))
		case h225.AliasAddress_EmailID:
			out = append(out, h225.AliasAddress{Choice: a.Choice, EmailID: strings.Clone(a.EmailID)})
		}
	}
	return out
}

// stripTraversal removes the NAT traversal features (H.460.18/.19/.23/.24):
// they concern the hop to Portico, not the inside.
func stripTraversal(gd []h225.GenericData) []h225.GenericData {
	var out []h225.GenericData
	for _, g := range gd {
		if g.Id.Choice == h225.GenericIdentifier_Standard {
			switch g.Id.Standard {
			case ras.H46018, ras.H46019, ras.H46023, ras.H46024:
				continue
			}
		}
		out = append(out, g)
	}
	return out
}

// insideGK sets a gatekeeperIdentifier field to the configured inside one,
// or clears it.
func (s *Server) insideGK(id *h225.GatekeeperIdentifier, has *bool) {
	if s.cfg.GatekeeperID == "" {
		*id, *has = nil, false
		return
	}
	*id, *has = h225.GatekeeperIdentifier(asn1per.BMP(s.cfg.GatekeeperID)), true
}

func (s *Server) ttl(r *registration) time.Duration {
	if r.h46018 {
		return s.cfg.KeepAliveInterval * 3
	}
	return s.cfg.TimeToLive
}

// rcf builds the RCF sent outside from the registration alone.
func (s *Server) rcf(seq h225.RequestSeqNum, r *registration) *h225.RasMessage {
	m := &h225.RegistrationConfirm{
		RequestSeqNum:      seq,
		ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		CallSignalAddress:  []h225.TransportAddress{ras.Transport(s.extSignal())},
		TerminalAlias:      r.aliases, HasTerminalAlias: len(r.aliases) > 0,
		GatekeeperIdentifier: s.outsideGK(), HasGatekeeperIdentifier: true,
		EndpointIdentifier: h225.EndpointIdentifier(asn1per.BMP(r.outsideID)),
		TimeToLive:         h225.TimeToLive(s.cfg.TimeToLive / time.Second), HasTimeToLive: true,
		HasWillRespondToIRR: true, HasMaintainConnection: true,
	}
	if r.h46018 {
		p := ras.Flag(H46018KeepAliveInterval)
		p.Content = &h225.Content{Choice: h225.Content_Number16, Number16: int64(s.cfg.KeepAliveInterval / time.Second)}
		m.FeatureSet = ras.Supported(s.traversalFeatures(r.h46019, p)...)
		m.TimeToLive = h225.TimeToLive(s.cfg.KeepAliveInterval / time.Second)
	}
	return &h225.RasMessage{Choice: h225.RasMessage_RegistrationConfirm, RegistrationConfirm: m}
}

// rrj builds the RRJ sent outside with the inside's reason (an unknown
// alternative becomes undefinedReason: its contents are not looked into).
func (s *Server) rrj(seq h225.RequestSeqNum, reason h225.RegistrationRejectReason) *h225.RasMessage {
	if reason.Raw != nil || reason.Choice > h225.RegistrationRejectReason_RegisterWithAssignedGK {
		reason = h225.RegistrationRejectReason{Choice: h225.RegistrationRejectReason_UndefinedReason}
	}
	reason.DuplicateAlias = cloneAliases(reason.DuplicateAlias)
	return &h225.RasMessage{Choice: h225.RasMessage_RegistrationReject, RegistrationReject: &h225.RegistrationReject{
		RequestSeqNum:        seq,
		ProtocolIdentifier:   h225.ProtocolIdentifier(h225.ProtocolV7),
		RejectReason:         reason,
		GatekeeperIdentifier: s.outsideGK(), HasGatekeeperIdentifier: true,
	}}
}

// outsideUnregister relays an outside URQ inside; an unknown endpoint is
// answered URJ notCurrentlyRegistered here.
func (s *Server) outsideUnregister(src netip.AddrPort, m *h225.RasMessage) {
	req := m.UnregistrationRequest
	r := s.regs.byOut[bmp(req.EndpointIdentifier)]
	if r == nil || !req.HasEndpointIdentifier {
		s.send(External, src, &h225.RasMessage{Choice: h225.RasMessage_UnregistrationReject, UnregistrationReject: &h225.UnregistrationReject{
			RequestSeqNum: req.RequestSeqNum, RejectReason: h225.UnregRejectReason{Choice: h225.UnregRejectReason_NotCurrentlyRegistered}}})
		return
	}
	p := &pending{kind: m.Choice, from: src, seq: req.RequestSeqNum, reg: r}
	seq, ok := s.track(true, p)
	if !ok {
		s.m.dropped.WithLabelValues(External, "pending_full").Inc()
		return
	}
	p.sent = s.send(Internal, s.cfg.Gatekeeper, s.insideURQ(seq, r))
}

func (s *Server) insideURQ(seq h225.RequestSeqNum, r *registration) *h225.RasMessage {
	m := &h225.UnregistrationRequest{
		RequestSeqNum:     seq,
		CallSignalAddress: []h225.TransportAddress{ras.Transport(s.cfg.InternalSignal)},
		EndpointAlias:     r.aliases, HasEndpointAlias: len(r.aliases) > 0,
		EndpointIdentifier: h225.EndpointIdentifier(asn1per.BMP(r.insideID)), HasEndpointIdentifier: true,
	}
	s.insideGK(&m.GatekeeperIdentifier, &m.HasGatekeeperIdentifier)
	return &h225.RasMessage{Choice: h225.RasMessage_UnregistrationRequest, UnregistrationRequest: m}
}

// relayInside relays ARQ, BRQ, DRQ, LRQ and IRR inside: the outside
// endpointIdentifier becomes the inside one and Portico's inside addresses
// replace the endpoint's. Requests of unregistered endpoints (but LRQ)
// are rejected here.
func (s *Server) relayInside(src netip.AddrPort, m *h225.RasMessage) {
	outSeq, _ := ras.SeqNum(m)
	var id *h225.EndpointIdentifier
	switch m.Choice {
	case h225.RasMessage_AdmissionRequest:
		id = &m.AdmissionRequest.EndpointIdentifier
	case h225.RasMessage_BandwidthRequest:
		id = &m.BandwidthRequest.EndpointIdentifier
	case h225.RasMessage_DisengageRequest:
		id = &m.DisengageRequest.EndpointIdentifier
	case h225.RasMessage_InfoRequestResponse:
		id = &m.InfoRequestResponse.EndpointIdentifier
	case h225.RasMessage_LocationRequest:
		id = &m.LocationRequest.EndpointIdentifier
	}
	r := s.regs.byOut[bmp(*id)]
	if r == nil && m.Choice != h225.RasMessage_LocationRequest {
		s.rejectUnregistered(src, m)
		return
	}
	if r != nil {
		*id = h225.EndpointIdentifier(asn1per.BMP(r.insideID))
	}
	p := &pending{kind: m.Choice, from: src, seq: h225.RequestSeqNum(outSeq), reg: r}
	if m.Choice == h225.RasMessage_AdmissionRequest && m.AdmissionRequest.CallIdentifier != nil {
		p.callID = clone16(m.AdmissionRequest.CallIdentifier.Guid)
		p.dest = aliasNames(m.AdmissionRequest.DestinationInfo)
	}
	if m.Choice == h225.RasMessage_DisengageRequest && m.DisengageRequest.CallIdentifier != nil {
		p.callID = clone16(m.DisengageRequest.CallIdentifier.Guid)
	}
	if m.Choice == h225.RasMessage_InfoRequestResponse {
		// An IRR answers the inside's IRQ (relayed out with Portico's
		// sequence number) or is unsolicited.
		if q := s.pendingOut[uint16(outSeq)]; q != nil && q.kind == h225.RasMessage_InfoRequest {
			s.untrack(s.pendingOut, uint16(outSeq))
			p.seq = q.seq
		}
	}
	var seq h225.RequestSeqNum
	if m.Choice == h225.RasMessage_InfoRequestResponse {
		seq = p.seq
	} else {
		var ok bool
		if seq, ok = s.track(true, p); !ok {
			s.m.dropped.WithLabelValues(External, "pending_full").Inc()
			return
		}
	}
	sig := []h225.TransportAddress{ras.Transport(s.cfg.InternalSignal)}
	switch m.Choice {
	case h225.RasMessage_AdmissionRequest:
		q := m.AdmissionRequest
		q.RequestSeqNum = seq
		if q.SrcCallSignalAddress != nil {
			q.SrcCallSignalAddress = &sig[0]
		}
		q.SrcAlternatives, q.HasSrcAlternatives = nil, false
		s.insideGK(&q.GatekeeperIdentifier, &q.HasGatekeeperIdentifier)
		q.FeatureSet = nil
		q.GenericData = stripTraversal(q.GenericData)
		q.HasGenericData = len(q.GenericData) > 0
	case h225.RasMessage_BandwidthRequest:
		q := m.BandwidthRequest
		q.RequestSeqNum = seq
		s.insideGK(&q.GatekeeperIdentifier, &q.HasGatekeeperIdentifier)
	case h225.RasMessage_DisengageRequest:
		q := m.DisengageRequest
		q.RequestSeqNum = seq
		s.insideGK(&q.GatekeeperIdentifier, &q.HasGatekeeperIdentifier)
	case h225.RasMessage_LocationRequest:
		q := m.LocationRequest
		q.RequestSeqNum = seq
		q.ReplyAddress = ras.Transport(s.inAddr)
		q.HasEndpointIdentifier = r != nil
		s.insideGK(&q.GatekeeperIdentifier, &q.HasGatekeeperIdentifier)
		q.FeatureSet = nil
		q.GenericData = stripTraversal(q.GenericData)
		q.HasGenericData = len(q.GenericData) > 0
	case h225.RasMessage_InfoRequestResponse:
		q := m.InfoRequestResponse
		q.RequestSeqNum = seq
		q.RasAddress = ras.Transport(s.inAddr)
		q.CallSignalAddress = sig
		q.PerCallInfo, q.HasPerCallInfo = nil, false
		if q.NeedResponse {
			seq2, ok := s.track(true, p)
			if !ok {
				return
			}
			q.RequestSeqNum = seq2
		}
	}
	p.sent = s.send(Internal, s.cfg.Gatekeeper, m)
}

// rejectUnregistered answers a request of an endpoint Portico does not
// know with the kind's "not registered" reject.
func (s *Server) rejectUnregistered(src netip.AddrPort, m *h225.RasMessage) {
	seq, _ := ras.SeqNum(m)
	rs := h225.RequestSeqNum(seq)
	switch m.Choice {
	case h225.RasMessage_AdmissionRequest:
		s.send(External, src, &h225.RasMessage{Choice: h225.RasMessage_AdmissionReject, AdmissionReject: &h225.AdmissionReject{
			RequestSeqNum: rs, RejectReason: h225.AdmissionRejectReason{Choice: h225.AdmissionRejectReason_CallerNotRegistered}}})
	case h225.RasMessage_BandwidthRequest:
		s.send(External, src, &h225.RasMessage{Choice: h225.RasMessage_BandwidthReject, BandwidthReject: &h225.BandwidthReject{
			RequestSeqNum: rs, RejectReason: h225.BandRejectReason{Choice: h225.BandRejectReason_NotBound}}})
	case h225.RasMessage_DisengageRequest:
		s.send(External, src, &h225.RasMessage{Choice: h225.RasMessage_DisengageReject, DisengageReject: &h225.DisengageReject{
			RequestSeqNum: rs, RejectReason: h225.DisengageRejectReason{Choice: h225.DisengageRejectReason_NotRegistered}}})
	default:
		s.m.dropped.WithLabelValues(External, "unregistered").Inc()
	}
}

// outsideAnswer matches an outside endpoint's answer to a request Portico
// relayed out for the inside (URQ, DRQ, IRQ) or sent itself (SCI).
func (s *Server) outsideAnswer(src netip.AddrPort, m *h225.RasMessage) {
	seq, _ := ras.SeqNum(m)
	p := s.pendingOut[uint16(seq)]
	if p == nil || (p.reg != nil && p.reg.src.Addr() != src.Addr()) {
		s.m.dropped.WithLabelValues(External, "unmatched").Inc()
		return
	}
	s.untrack(s.pendingOut, uint16(seq))
	var out *h225.RasMessage
	switch m.Choice {
	case h225.RasMessage_ServiceControlResponse:
		if p.scr != nil {
			close(p.scr)
		}
		return
	case h225.RasMessage_UnregistrationConfirm:
		out = &h225.RasMessage{Choice: m.Choice, UnregistrationConfirm: &h225.UnregistrationConfirm{RequestSeqNum: p.seq}}
	case h225.RasMessage_UnregistrationReject:
		out = &h225.RasMessage{Choice: m.Choice, UnregistrationReject: &h225.UnregistrationReject{RequestSeqNum: p.seq,
			RejectReason: h225.UnregRejectReason{Choice: m.UnregistrationReject.RejectReason.Choice}}}
	case h225.RasMessage_DisengageConfirm:
		out = &h225.RasMessage{Choice: m.Choice, DisengageConfirm: &h225.DisengageConfirm{RequestSeqNum: p.seq}}
	case h225.RasMessage_DisengageReject:
		out = &h225.RasMessage{Choice: m.Choice, DisengageReject: &h225.DisengageReject{RequestSeqNum: p.seq,
			RejectReason: h225.DisengageRejectReason{Choice: m.DisengageReject.RejectReason.Choice}}}
	}
	if out != nil && p.from.IsValid() {
		s.send(Internal, p.from, out)
	}
}

// handleInternal handles one datagram from the inside gatekeeper.
func (s *Server) handleInternal(src netip.AddrPort, b []byte) {
	if src.Addr().Unmap() != s.gk.Addr().Unmap() { // s.gk never changes: read without the lock
		s.m.dropped.WithLabelValues(Internal, "unknown_source").Inc()
		return
	}
	m, err := ras.Parse(b)
	if err != nil {
		s.m.dropped.WithLabelValues(Internal, "malformed").Inc()
		return
	}
	s.m.received.WithLabelValues(Internal, ras.Name(m)).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m.Choice {
	case h225.RasMessage_UnregistrationRequest:
		s.insideUnregister(src, m.UnregistrationRequest)
		return
	case h225.RasMessage_DisengageRequest:
		s.insideDisengage(src, m.DisengageRequest)
		return
	case h225.RasMessage_InfoRequest:
		s.insideInfoRequest(src, m.InfoRequest)
		return
	case h225.RasMessage_LocationRequest:
		s.insideLocate(src, m.LocationRequest)
		return
	}
	seq, ok := ras.SeqNum(m)
	p := s.pendingIn[uint16(seq)]
	if !ok || p == nil || !answers(p.kind, m.Choice) {
		s.m.dropped.WithLabelValues(Internal, "unmatched").Inc()
		return
	}
	if m.Choice == h225.RasMessage_RequestInProgress {
		p.expires = s.now().Add(s.cfg.RequestTimeout + time.Duration(m.RequestInProgress.Delay)*time.Millisecond)
		if p.from.IsValid() {
			s.send(External, p.from, &h225.RasMessage{Choice: m.Choice, RequestInProgress: &h225.RequestInProgress{RequestSeqNum: p.seq, Delay: m.RequestInProgress.Delay}})
		}
		return
	}
	s.untrack(s.pendingIn, uint16(seq))
	if p.kind == h225.RasMessage_RegistrationRequest {
		s.registrationAnswer(p, m)
		return
	}
	if m.Choice == h225.RasMessage_LocationReject || m.Choice == h225.RasMessage_AdmissionReject &&
		m.AdmissionReject.RejectReason.Choice == h225.AdmissionRejectReason_CalledPartyNotRegistered {
		// The inside knows no such alias: scored like a SIP 404, as
		// alias guessing.
		s.observe(p.from.Addr(), guard.NotFound)
	}
	out := s.outsideResponse(p, m)
	if out != nil && p.from.IsValid() {
		s.send(External, p.from, out)
	}
}

// outsideResponse builds, from an allow-list of the inside answer's
// fields, the answer sent outside: every address in it is Portico's.
func (s *Server) outsideResponse(p *pending, m *h225.RasMessage) *h225.RasMessage {
	switch m.Choice {
	case h225.RasMessage_UnregistrationConfirm:
		if p.reg != nil {
			s.dropRegistration(p.reg, "unregistered", "endpoint unregistered")
		}
		return &h225.RasMessage{Choice: m.Choice, UnregistrationConfirm: &h225.UnregistrationConfirm{RequestSeqNum: p.seq}}
	case h225.RasMessage_UnregistrationReject:
		return &h225.RasMessage{Choice: m.Choice, UnregistrationReject: &h225.UnregistrationReject{RequestSeqNum: p.seq,
			RejectReason: h225.UnregRejectReason{Choice: m.UnregistrationReject.RejectReason.Choice}}}
	case h225.RasMessage_AdmissionConfirm:
		a := m.AdmissionConfirm
		if p.callID != nil && p.reg != nil && len(s.calls) < s.cfg.MaxPending*4 {
			s.calls[[16]byte(p.callID)] = p.reg
			if d, err := ras.AddrPort(&a.DestCallSignalAddress); err == nil {
				s.dests[[16]byte(p.callID)] = admitted{addr: d, aliases: append(p.dest, aliasNames(a.DestinationInfo)...)}
			}
		}
		return &h225.RasMessage{Choice: m.Choice, AdmissionConfirm: &h225.AdmissionConfirm{
			RequestSeqNum: p.seq, BandWidth: a.BandWidth,
			CallModel:             h225.CallModel{Choice: h225.CallModel_GatekeeperRouted},
			DestCallSignalAddress: ras.Transport(s.extSignal()),
			IrrFrequency:          a.IrrFrequency, HasIrrFrequency: a.HasIrrFrequency,
			DestinationInfo: cloneAliases(a.DestinationInfo), HasDestinationInfo: len(cloneAliases(a.DestinationInfo)) > 0,
			HasWillRespondToIRR: true, UuiesRequested: &h225.UUIEsRequested{},
		}}
	case h225.RasMessage_AdmissionReject:
		reason := m.AdmissionReject.RejectReason
		if reason.Raw != nil {
			reason = h225.AdmissionRejectReason{Choice: h225.AdmissionRejectReason_UndefinedReason}
		}
		return &h225.RasMessage{Choice: m.Choice, AdmissionReject: &h225.AdmissionReject{RequestSeqNum: p.seq, RejectReason: reason}}
	case h225.RasMessage_LocationConfirm:
		l := m.LocationConfirm
		s.federatedSource(p)
		return &h225.RasMessage{Choice: m.Choice, LocationConfirm: &h225.LocationConfirm{
			RequestSeqNum:     p.seq,
			CallSignalAddress: ras.Transport(s.extSignal()),
			RasAddress:        ras.Transport(s.extAddr),
			DestinationInfo:   cloneAliases(l.DestinationInfo), HasDestinationInfo: len(cloneAliases(l.DestinationInfo)) > 0,
		}}
	case h225.RasMessage_LocationReject:
		return &h225.RasMessage{Choice: m.Choice, LocationReject: &h225.LocationReject{RequestSeqNum: p.seq,
			RejectReason: h225.LocationRejectReason{Choice: rawSafe(m.LocationReject.RejectReason.Choice, m.LocationReject.RejectReason.Raw, h225.LocationRejectReason_UndefinedReason)}}}
	case h225.RasMessage_BandwidthConfirm:
		return &h225.RasMessage{Choice: m.Choice, BandwidthConfirm: &h225.BandwidthConfirm{RequestSeqNum: p.seq, BandWidth: m.BandwidthConfirm.BandWidth}}
	case h225.RasMessage_BandwidthReject:
		return &h225.RasMessage{Choice: m.Choice, BandwidthReject: &h225.BandwidthReject{RequestSeqNum: p.seq,
			RejectReason:     h225.BandRejectReason{Choice: rawSafe(m.BandwidthReject.RejectReason.Choice, m.BandwidthReject.RejectReason.Raw, h225.BandRejectReason_UndefinedReason)},
			AllowedBandWidth: m.BandwidthReject.AllowedBandWidth}}
	case h225.RasMessage_DisengageConfirm:
		if p.callID != nil {
			delete(s.calls, [16]byte(p.callID))
			delete(s.dests, [16]byte(p.callID))
		}
		return &h225.RasMessage{Choice: m.Choice, DisengageConfirm: &h225.DisengageConfirm{RequestSeqNum: p.seq}}
	case h225.RasMessage_DisengageReject:
		return &h225.RasMessage{Choice: m.Choice, DisengageReject: &h225.DisengageReject{RequestSeqNum: p.seq,
			RejectReason: h225.DisengageRejectReason{Choice: rawSafe(m.DisengageReject.RejectReason.Choice, m.DisengageReject.RejectReason.Raw, h225.DisengageRejectReason_NotRegistered)}}}
	case h225.RasMessage_InfoRequestAck:
		return &h225.RasMessage{Choice: m.Choice, InfoRequestAck: &h225.InfoRequestAck{RequestSeqNum: p.seq}}
	case h225.RasMessage_InfoRequestNak:
		return &h225.RasMessage{Choice: m.Choice, InfoRequestNak: &h225.InfoRequestNak{RequestSeqNum: p.seq,
			NakReason: h225.InfoRequestNakReason{Choice: rawSafe(m.InfoRequestNak.NakReason.Choice, m.InfoRequestNak.NakReason.Raw, h225.InfoRequestNakReason_UndefinedReason)}}}
	}
	return nil
}

// rawSafe returns choice, or def for an unknown extension alternative.
func rawSafe(choice int, raw []byte, def int) int {
	if raw != nil {
		return def
	}
	return choice
}

// registrationAnswer handles the inside's RCF or RRJ to a relayed or
// refreshing RRQ.
func (s *Server) registrationAnswer(p *pending, m *h225.RasMessage) {
	now := s.now()
	if p.reg == nil && !p.refresh {
		s.regs.reserved--
	}
	if m.Choice == h225.RasMessage_RegistrationReject {
		reason := m.RegistrationReject.RejectReason
		words := "gatekeeper rejected: " + reasonWords(reason.Choice)
		if p.reg != nil {
			s.dropRegistration(p.reg, "rejected", words)
		} else {
			s.m.regEvents.WithLabelValues("rejected").Inc()
			s.history(p.from, aliasNames(p.rrq.TerminalAlias), "rejected", 0, words)
		}
		if reason.Choice == h225.RegistrationRejectReason_SecurityDenial || reason.Choice == h225.RegistrationRejectReason_SecurityError {
			s.observe(p.from.Addr(), guard.Forbidden)
		}
		if !p.refresh {
			s.send(External, p.from, s.rrj(p.seq, reason))
		}
		return
	}
	c := m.RegistrationConfirm
	if p.refresh {
		if r := p.reg; r != nil {
			r.refreshing = false
			if c.HasTimeToLive {
				r.insideTTL = time.Duration(c.TimeToLive) * time.Second
			}
			r.refreshAt = now.Add(r.insideTTL * 2 / 3)
		}
		return
	}
	r := p.reg
	kind := "refreshed"
	if r == nil {
		kind = "registered"
		r = &registration{outsideID: newID()}
	} else {
		s.regs.remove(r)
	}
	r.insideID = bmp(c.EndpointIdentifier)
	if old := s.regs.byIn[r.insideID]; old != nil && old != r {
		// The inside took this RRQ for a re-registration of an endpoint
		// Portico holds under another binding (NAT rebinding): that one is
		// superseded, and must not unregister this one when it expires.
		s.regs.remove(old)
	}
	r.aliases = p.rrq.TerminalAlias
	if c.HasTerminalAlias && len(cloneAliases(c.TerminalAlias)) > 0 {
		r.aliases = cloneAliases(c.TerminalAlias)
	}
	r.names = aliasNames(r.aliases)
	r.kaSignal, r.kaH245 = p.kaSignal, p.kaH245
	r.src = p.from
	r.h46018 = p.h46018
	r.h46019, r.mux19 = p.h46019, p.mux19
	r.callSignal = outsideSignal(p.rrq.CallSignalAddress, p.from)
	r.expires = now.Add(s.ttl(r))
	r.insideTTL = 0
	if c.HasTimeToLive {
		r.insideTTL = time.Duration(c.TimeToLive) * time.Second
	}
	r.refreshAt = now.Add(r.insideTTL * 2 / 3)
	s.regs.add(r)
	s.m.registrations.Set(float64(s.regs.len()))
	s.m.regEvents.WithLabelValues(kind).Inc()
	if kind == "registered" {
		s.history(p.from, r.names, kind, int(s.ttl(r)/time.Second), "")
	}
	s.send(External, p.from, s.rcf(p.seq, r))
}

// outsideSignal is the endpoint's call-signalling address as reachable
// from Portico: its declared port on its RAS source address when the
// declared address is not the one its datagrams come from (NAT).
func outsideSignal(declared []h225.TransportAddress, src netip.AddrPort) netip.AddrPort {
	for i := range declared {
		if ap, err := ras.AddrPort(&declared[i]); err == nil {
			if ap.Addr().Unmap() != src.Addr().Unmap() {
				return netip.AddrPortFrom(src.Addr(), ap.Port())
			}
			return ap
		}
	}
	return netip.AddrPortFrom(src.Addr(), DefaultSignalPort)
}

// dropRegistration removes r and records why.
func (s *Server) dropRegistration(r *registration, kind, reason string) {
	if s.regs.byOut[r.outsideID] != r {
		return
	}
	s.regs.remove(r)
	s.m.registrations.Set(float64(s.regs.len()))
	s.m.regEvents.WithLabelValues(kind).Inc()
	s.history(r.src, r.names, kind, 0, reason)
}

// history queues a registration event for the history writer without
// blocking the read path; when historyQueue events wait already (a flood
// of rejections the store cannot keep up with) it is dropped, counted.
func (s *Server) history(src netip.AddrPort, names []string, kind string, expires int, reason string) {
	if s.deps.History == nil {
		return
	}
	ev := store.RegistrationEvent{Time: s.now(), Protocol: "h323", AOR: strings.Join(names, ","), Source: src.String(),
		Transport: "udp", Kind: kind, Expires: expires, Reason: reason}
	select {
	case s.events <- ev:
	default:
		s.m.dropped.WithLabelValues(External, "history_full").Inc()
	}
}

// historyLoop writes the queued registration events; at shutdown it
// writes what is still queued.
func (s *Server) historyLoop() {
	write := func(ev store.RegistrationEvent) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.deps.History.AddRegistrationEvent(ctx, ev); err != nil {
			s.log.Debug("history", "err", err)
		}
	}
	for {
		select {
		case ev := <-s.events:
			write(ev)
		case <-s.ctx.Done():
			for {
				select {
				case ev := <-s.events:
					write(ev)
				default:
					return
				}
			}
		}
	}
}

// reasonWords names a RegistrationRejectReason for history and logs.
func reasonWords(c int) string {
	switch c {
	case h225.RegistrationRejectReason_DiscoveryRequired:
		return "discovery required"
	case h225.RegistrationRejectReason_InvalidRevision:
		return "invalid revision"
	case h225.RegistrationRejectReason_InvalidCallSignalAddress:
		return "invalid call signal address"
	case h225.RegistrationRejectReason_InvalidRASAddress:
		return "invalid RAS address"
	case h225.RegistrationRejectReason_DuplicateAlias:
		return "duplicate alias"
	case h225.RegistrationRejectReason_InvalidTerminalType:
		return "invalid terminal type"
	case h225.RegistrationRejectReason_TransportNotSupported:
		return "transport not supported"
	case h225.RegistrationRejectReason_ResourceUnavailable:
		return "resource unavailable"
	case h225.RegistrationRejectReason_InvalidAlias:
		return "invalid alias"
	case h225.RegistrationRejectReason_SecurityDenial:
		return "security denial"
	case h225.RegistrationRejectReason_FullRegistrationRequired:
		return "full registration required"
	case h225.RegistrationRejectReason_InvalidTerminalAliases:
		return "invalid terminal aliases"
	case h225.RegistrationRejectReason_NeededFeatureNotSupported:
		return "needed feature not supported"
	case h225.RegistrationRejectReason_SecurityError:
		return "security error"
	}
	return "undefined reason"
}

// insideUnregister relays the gatekeeper's URQ to the endpoint and drops
// the registration (the inside holds it no more).
func (s *Server) insideUnregister(src netip.AddrPort, req *h225.UnregistrationRequest) {
	r := s.regs.byIn[bmp(req.EndpointIdentifier)]
	if r == nil || !req.HasEndpointIdentifier {
		s.send(Internal, src, &h225.RasMessage{Choice: h225.RasMessage_UnregistrationReject, UnregistrationReject: &h225.UnregistrationReject{
			RequestSeqNum: req.RequestSeqNum, RejectReason: h225.UnregRejectReason{Choice: h225.UnregRejectReason_NotCurrentlyRegistered}}})
		return
	}
	s.dropRegistration(r, "unregistered", "gatekeeper unregistered the endpoint")
	seq, ok := s.track(false, &pending{kind: h225.RasMessage_UnregistrationRequest, from: src, seq: req.RequestSeqNum, reg: r})
	if !ok {
		return
	}
	s.send(External, r.src, s.outsideURQ(seq, r))
}

// insideDisengage relays the gatekeeper's DRQ to the endpoint.
func (s *Server) insideDisengage(src netip.AddrPort, req *h225.DisengageRequest) {
	r := s.regs.byIn[bmp(req.EndpointIdentifier)]
	if r == nil {
		s.send(Internal, src, &h225.RasMessage{Choice: h225.RasMessage_DisengageReject, DisengageReject: &h225.DisengageReject{
			RequestSeqNum: req.RequestSeqNum, RejectReason: h225.DisengageRejectReason{Choice: h225.DisengageRejectReason_NotRegistered}}})
		return
	}
	seq, ok := s.track(false, &pending{kind: h225.RasMessage_DisengageRequest, from: src, seq: req.RequestSeqNum, reg: r})
	if !ok {
		return
	}
	m := &h225.DisengageRequest{
		RequestSeqNum:        seq,
		EndpointIdentifier:   h225.EndpointIdentifier(asn1per.BMP(r.outsideID)),
		ConferenceID:         h225.ConferenceIdentifier(clone16(req.ConferenceID)),
		CallReferenceValue:   req.CallReferenceValue,
		DisengageReason:      h225.DisengageReason{Choice: rawSafe(req.DisengageReason.Choice, req.DisengageReason.Raw, h225.DisengageReason_ForcedDrop)},
		GatekeeperIdentifier: s.outsideGK(), HasGatekeeperIdentifier: true,
		AnsweredCall: req.AnsweredCall, HasAnsweredCall: req.HasAnsweredCall,
	}
	if req.CallIdentifier != nil {
		m.CallIdentifier = &h225.CallIdentifier{Guid: h225.GloballyUniqueID(clone16(req.CallIdentifier.Guid))}
	}
	s.send(External, r.src, &h225.RasMessage{Choice: h225.RasMessage_DisengageRequest, DisengageRequest: m})
}

// insideInfoRequest relays the gatekeeper's IRQ to the endpoint whose
// call it names. All proxied endpoints share Portico's inside RAS address,
// so an IRQ naming no admitted call cannot be routed: it is dropped,
// counted (the inside then relies on its timeToLive).
func (s *Server) insideInfoRequest(src netip.AddrPort, req *h225.InfoRequest) {
	var r *registration
	if req.CallIdentifier != nil && len(req.CallIdentifier.Guid) == 16 {
		r = s.calls[[16]byte(req.CallIdentifier.Guid)]
	}
	if r == nil || s.regs.byOut[r.outsideID] != r {
		s.m.dropped.WithLabelValues(Internal, "unroutable").Inc()
		return
	}
	seq, ok := s.track(false, &pending{kind: h225.RasMessage_InfoRequest, from: src, seq: req.RequestSeqNum, reg: r})
	if !ok {
		return
	}
	m := ras.IRQ(int(seq), int(req.CallReferenceValue), s.extAddr)
	m.InfoRequest.CallIdentifier = &h225.CallIdentifier{Guid: h225.GloballyUniqueID(clone16(req.CallIdentifier.Guid))}
	s.send(External, r.src, m)
}

// insideAnswers maps the requests Portico sends inside to their answers.
var insideAnswers = map[int][2]int{
	h225.RasMessage_RegistrationRequest:   {h225.RasMessage_RegistrationConfirm, h225.RasMessage_RegistrationReject},
	h225.RasMessage_UnregistrationRequest: {h225.RasMessage_UnregistrationConfirm, h225.RasMessage_UnregistrationReject},
	h225.RasMessage_AdmissionRequest:      {h225.RasMessage_AdmissionConfirm, h225.RasMessage_AdmissionReject},
	h225.RasMessage_BandwidthRequest:      {h225.RasMessage_BandwidthConfirm, h225.RasMessage_BandwidthReject},
	h225.RasMessage_DisengageRequest:      {h225.RasMessage_DisengageConfirm, h225.RasMessage_DisengageReject},
	h225.RasMessage_LocationRequest:       {h225.RasMessage_LocationConfirm, h225.RasMessage_LocationReject},
	h225.RasMessage_InfoRequestResponse:   {h225.RasMessage_InfoRequestAck, h225.RasMessage_InfoRequestNak},
}

// answers reports whether resp answers a request of kind
// (RequestInProgress answers any).
func answers(kind, resp int) bool {
	a, ok := insideAnswers[kind]
	return ok && (resp == a[0] || resp == a[1] || resp == h225.RasMessage_RequestInProgress)
}

func clone16(b []byte) []byte {
	out := make([]byte, 16)
	copy(out, b)
	return out
}

// sweep expires silent outside registrations (unregistering them inside),
// refreshes inside registrations before the inside's timeToLive runs out,
// and forgets requests that were never answered.
func (s *Server) sweep(now time.Time) {
	// The walk only decides and builds, under the lock; the datagrams go
	// out after it, so the read loops never wait for the sweep's sends.
	var out []*h225.RasMessage
	s.mu.Lock()
	for _, r := range s.regs.byOut {
		if now.After(r.expires) {
			if seq, ok := s.track(true, &pending{kind: h225.RasMessage_UnregistrationRequest}); ok {
				out = append(out, s.insideURQ(seq, r))
			}
			s.dropRegistration(r, "expired", "no keep-alive within the time to live")
			continue
		}
		if r.insideTTL > 0 && !now.Before(r.refreshAt) {
			if m := s.refreshInside(r, now); m != nil {
				out = append(out, m)
			}
		}
	}
	s.expirePending(now)
	gk := s.cfg.Gatekeeper
	s.mu.Unlock()
	for _, m := range out {
		s.send(Internal, gk, m)
	}
}

// refreshInside returns the lightweight RRQ that refreshes r's inside
// registration in Portico's name, so that the endpoint's keep-alives need
// not cross; nil when no transaction is free. Caller holds s.mu and sends
// it after unlocking.
func (s *Server) refreshInside(r *registration, now time.Time) *h225.RasMessage {
	seq, ok := s.track(true, &pending{kind: h225.RasMessage_RegistrationRequest, reg: r, refresh: true})
	if !ok {
		return nil
	}
	r.refreshing = true
	// Retry after a third of the TTL if the answer is lost.
	r.refreshAt = now.Add(r.insideTTL / 3)
	e := ras.Endpoint{RAS: s.inAddr, CallSignal: s.cfg.InternalSignal, Aliases: r.aliases, Gatekeeper: s.cfg.GatekeeperID,
		KeepAlive: true, EndpointID: r.insideID, TimeToLive: int64(r.insideTTL / time.Second), Terminal: true}
	return ras.RRQ(int(seq), e)
}

func (s *Server) expirePending(now time.Time) {
	for k, p := range s.pendingIn {
		if now.After(p.expires) {
			if p.kind == h225.RasMessage_RegistrationRequest && p.reg == nil && !p.refresh {
				s.regs.reserved--
			}
			if p.refresh && p.reg != nil {
				p.reg.refreshing = false
			}
			s.untrack(s.pendingIn, k)
		}
	}
	for k, p := range s.pendingOut {
		if now.After(p.expires) {
			s.untrack(s.pendingOut, k)
		}
	}
}
