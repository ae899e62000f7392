package h323proxy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323proxy/callsig"
)

// KeepAliveMethod is how Portico keeps a TCP connection to an H.460.18
// endpoint alive through its NAT: H.460.18 wants traffic on the call
// signalling and H.245 connections at least every keep-alive interval.
type KeepAliveMethod string

// Keep-alive methods.
const (
	// KeepAliveTPKT sends an empty TPKT packet (4 octets, H.225.0 §7.2.2
	// lets them be ignored): the default, on both connections.
	KeepAliveTPKT KeepAliveMethod = "tpkt"
	// KeepAliveFacility sends a Q.931 Facility whose Facility-UUIE carries
	// only reason undefinedReason and the call identifier (call
	// signalling only), for endpoints that drop connections that carry no
	// Q.931 message.
	KeepAliveFacility KeepAliveMethod = "facility"
	// KeepAliveNone sends nothing, for endpoints that break on them.
	KeepAliveNone KeepAliveMethod = "none"
)

// KeepAliveRule picks the keep-alive methods of the endpoints whose RRQ
// endpointVendor matches it.
type KeepAliveRule struct {
	// Product matches a case-insensitive substring of the productId or
	// versionId; Manufacturer, when set, the T.35 manufacturer code. A
	// rule with both needs both.
	Product      string
	Manufacturer *int
	// Signalling and H245 are the methods (empty: tpkt).
	Signalling, H245 KeepAliveMethod
}

// DefaultKeepAlives apply after the configured rules; an endpoint no rule
// matches gets tpkt on both connections. Cisco and TANDBERG endpoints
// (TC/CE software) are given an empty Facility on call signalling, since
// some of them close a call-signalling connection that carries only empty
// TPKTs; Polycom endpoints get no H.245 keep-alive, since some of them
// end the call on an empty TPKT on the H.245 connection.
var DefaultKeepAlives = []KeepAliveRule{
	{Product: "cisco", Signalling: KeepAliveFacility, H245: KeepAliveTPKT},
	{Product: "tandberg", Signalling: KeepAliveFacility, H245: KeepAliveTPKT},
	{Product: "polycom", Signalling: KeepAliveTPKT, H245: KeepAliveNone},
}

// matches reports whether r applies to vendor v.
func (r *KeepAliveRule) matches(v *h225.VendorIdentifier) bool {
	if v == nil {
		return false
	}
	if r.Manufacturer != nil && int(v.Vendor.ManufacturerCode) != *r.Manufacturer {
		return false
	}
	if r.Product == "" {
		return r.Manufacturer != nil
	}
	p := strings.ToLower(r.Product)
	return strings.Contains(strings.ToLower(string(v.ProductId)), p) || strings.Contains(strings.ToLower(string(v.VersionId)), p)
}

// keepAliveFor returns the methods for an endpoint of vendor v (nil:
// unknown): the first configured rule that matches, else the first
// default one, else tpkt on both. Callers hold s.mu (cfg).
func (s *Server) keepAliveFor(v *h225.VendorIdentifier) (sig, h245 KeepAliveMethod) {
	for _, rules := range [][]KeepAliveRule{s.cfg.KeepAlives, DefaultKeepAlives} {
		for i := range rules {
			if rules[i].matches(v) {
				return orTPKT(rules[i].Signalling), orTPKT(rules[i].H245)
			}
		}
	}
	return KeepAliveTPKT, KeepAliveTPKT
}

func orTPKT(m KeepAliveMethod) KeepAliveMethod {
	if m == "" {
		return KeepAliveTPKT
	}
	return m
}

// validateKeepAlives refuses rules that match nothing or name an unknown
// method (facility is a call-signalling method only).
func (c *Config) validateKeepAlives(es *field.Errors) {
	for i, r := range c.KeepAlives {
		path := fmt.Sprintf("h323.keep_alives[%d]", i)
		if r.Product == "" && r.Manufacturer == nil {
			es.Add(path+".product", "a rule needs a product or a manufacturer to match")
		}
		if r.Manufacturer != nil && (*r.Manufacturer < 0 || *r.Manufacturer > 65535) {
			es.Add(path+".manufacturer", "%d is not a T.35 manufacturer code (0-65535)", *r.Manufacturer)
		}
		switch r.Signalling {
		case "", KeepAliveTPKT, KeepAliveFacility, KeepAliveNone:
		default:
			es.Add(path+".signalling", "%q is not tpkt, facility or none", r.Signalling)
		}
		switch r.H245 {
		case "", KeepAliveTPKT, KeepAliveNone:
		default:
			es.Add(path+".h245", "%q is not tpkt or none (H.245 has no Facility)", r.H245)
		}
	}
}

// keepAlive tells the call-signalling proxy how to keep the outside
// connection to remote alive: the methods of the H.460.18 endpoint
// registered from its address, or tpkt toward a traversal zone's server
// (Portico is then the H.460.18 client). Other connections get none.
func (s *Server) keepAlive(remote netip.AddrPort) (callsig.KeepAlive, bool) {
	if s.zoneAt(remote.Addr()) != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return callsig.KeepAlive{Signalling: string(KeepAliveTPKT), H245: string(KeepAliveTPKT), Interval: s.cfg.KeepAliveInterval, Client: true}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.regs.traversal[remote.Addr().Unmap()]
	if len(rs) == 0 {
		return callsig.KeepAlive{}, false
	}
	r := rs[len(rs)-1] // several behind one NAT address: the newest
	return callsig.KeepAlive{Signalling: string(r.kaSignal), H245: string(r.kaH245), Interval: s.cfg.KeepAliveInterval, NATed: true}, true
}
