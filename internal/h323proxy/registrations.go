package h323proxy

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// Endpoint is an outside endpoint as the call-signalling proxy sees it
// (Registry.Outside): where it is reached and whether it must be asked to
// connect (H.460.18).
type Endpoint struct {
	// Alias is the alias it was looked up by.
	Alias string
	// ID is the endpointIdentifier Portico gave it outside.
	ID string
	// CallSignal is its call-signalling address as seen from outside:
	// the declared port on the address its RAS came from when it sits
	// behind NAT.
	CallSignal netip.AddrPort
	// RAS is the NAT binding its RAS messages come from.
	RAS netip.AddrPort
	// H46018 is set when it registered with H.460.18: it cannot be
	// dialled, Traversal.Connect makes it connect.
	H46018 bool
	// H46019 is set when H.460.19 was confirmed to it as well: Portico is
	// its media traversal server. H46019Multiplex: it can transmit
	// multiplexed media.
	H46019, H46019Multiplex bool
}

// registration is one outside endpoint registered inside through Portico.
type registration struct {
	outsideID, insideID string
	aliases             []h225.AliasAddress
	names               []string // the aliases' text
	src                 netip.AddrPort
	callSignal          netip.AddrPort
	h46018, h46019      bool
	mux19               bool
	// expires is when the endpoint is unregistered unless it refreshes
	// (outside timeToLive).
	expires time.Time
	// insideTTL is the inside's timeToLive (0: none); refreshAt is when
	// Portico next refreshes the inside registration itself.
	insideTTL time.Duration
	refreshAt time.Time
	// refreshing is set while a keep-alive RRQ of Portico's is in flight.
	refreshing bool
	// kaSignal and kaH245 are its TCP keep-alive methods (keepalive.go).
	kaSignal, kaH245 KeepAliveMethod
}

func (r *registration) endpoint(alias string) Endpoint {
	return Endpoint{Alias: alias, ID: r.outsideID, CallSignal: r.callSignal, RAS: r.src, H46018: r.h46018, H46019: r.h46019, H46019Multiplex: r.mux19}
}

// table is the registration table, bounded by max. It is guarded by
// Server.mu.
type table struct {
	max     int
	byOut   map[string]*registration
	byIn    map[string]*registration
	byAlias map[string]*registration
	// traversal holds the H.460.18 registrations by source IP (a keep-alive
	// never moves a registration to another IP), newest last.
	traversal map[netip.Addr][]*registration
	reserved  int // full RRQs in flight, counted against max
}

func newTable(max int) *table {
	return &table{max: max, byOut: map[string]*registration{}, byIn: map[string]*registration{}, byAlias: map[string]*registration{},
		traversal: map[netip.Addr][]*registration{}}
}

func (t *table) len() int { return len(t.byOut) }

// full reports whether one more registration would exceed max.
func (t *table) full() bool { return len(t.byOut)+t.reserved >= t.max }

func (t *table) add(r *registration) {
	t.byOut[r.outsideID] = r
	t.byIn[r.insideID] = r
	if r.h46018 {
		ip := r.src.Addr().Unmap()
		t.traversal[ip] = append(slices.DeleteFunc(t.traversal[ip], func(o *registration) bool { return o == r }), r)
	}
	for _, n := range r.names {
		if old := t.byAlias[n]; old != nil && old != r {
			// The inside let another endpoint take the alias: the newest
			// registration wins it.
			delete(t.byAlias, n)
		}
		t.byAlias[n] = r
	}
}

func (t *table) remove(r *registration) {
	if t.byOut[r.outsideID] == r {
		delete(t.byOut, r.outsideID)
	}
	if t.byIn[r.insideID] == r {
		delete(t.byIn, r.insideID)
	}
	ip := r.src.Addr().Unmap()
	if rs := slices.DeleteFunc(t.traversal[ip], func(o *registration) bool { return o == r }); len(rs) > 0 {
		t.traversal[ip] = rs
	} else {
		delete(t.traversal, ip)
	}
	for _, n := range r.names {
		if t.byAlias[n] == r {
			delete(t.byAlias, n)
		}
	}
}

// newID returns a random endpointIdentifier for the outside: it tells
// nothing of the inside's.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func aliasNames(as []h225.AliasAddress) []string {
	var out []string
	for i := range as {
		if s, ok := ras.AliasString(&as[i]); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Outside implements the call-signalling proxy's Registry: the outside
// endpoint registered under alias.
func (s *Server) Outside(alias string) (Endpoint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regs.byAlias[alias]
	if r == nil {
		return Endpoint{}, false
	}
	return r.endpoint(alias), true
}

// Registration is one row of Registrations (the live-registration API).
type Registration struct {
	Aliases    []string  `json:"aliases"`
	Source     string    `json:"source"`
	CallSignal string    `json:"call_signal"`
	H46018     bool      `json:"h460_18"`
	Expires    time.Time `json:"expires"`
}

// Registrations returns the registrations held now.
func (s *Server) Registrations() []Registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Registration, 0, len(s.regs.byOut))
	for _, r := range s.regs.byOut {
		out = append(out, Registration{Aliases: r.names, Source: r.src.String(), CallSignal: r.callSignal.String(),
			H46018: r.h46018, Expires: r.expires})
	}
	return out
}

// Unregister ends the registration holding alias, as an administrator
// asks: Portico sends URQ in its own name to the inside gatekeeper and to
// the endpoint (which may register again), drops the registration and
// records it as unregistered ("unregistered by an administrator"). It
// returns the number of registrations ended; ErrNotRegistered when none
// holds alias.
func (s *Server) Unregister(alias string) (int, error) {
	type datagram struct {
		side string
		dst  netip.AddrPort
		m    *h225.RasMessage
	}
	var out []datagram
	s.mu.Lock()
	r := s.regs.byAlias[alias]
	if r == nil {
		s.mu.Unlock()
		return 0, fmt.Errorf("%w: %s", ErrNotRegistered, alias)
	}
	if seq, ok := s.track(true, &pending{kind: h225.RasMessage_UnregistrationRequest}); ok {
		out = append(out, datagram{Internal, s.cfg.Gatekeeper, s.insideURQ(seq, r)})
	}
	s.dropRegistration(r, "unregistered", "unregistered by an administrator")
	if seq, ok := s.track(false, &pending{kind: h225.RasMessage_UnregistrationRequest, reg: r}); ok {
		out = append(out, datagram{External, r.src, s.outsideURQ(seq, r)})
	}
	s.mu.Unlock()
	for _, d := range out {
		s.send(d.side, d.dst, d.m)
	}
	return 1, nil
}

// outsideURQ is the URQ that tells the endpoint of r it is no longer
// registered (the inside's URQ relayed, or Portico's own).
func (s *Server) outsideURQ(seq h225.RequestSeqNum, r *registration) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_UnregistrationRequest, UnregistrationRequest: &h225.UnregistrationRequest{
		RequestSeqNum:     seq,
		CallSignalAddress: []h225.TransportAddress{ras.Transport(r.callSignal)},
		EndpointAlias:     r.aliases, HasEndpointAlias: len(r.aliases) > 0,
		EndpointIdentifier: h225.EndpointIdentifier(asn1per.BMP(r.outsideID)), HasEndpointIdentifier: true,
		GatekeeperIdentifier: s.outsideGK(), HasGatekeeperIdentifier: true,
	}}
}
