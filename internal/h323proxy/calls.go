package h323proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323proxy/callsig"
	"github.com/portico-edge/portico/internal/policy"
)

// newCalls builds the call-signalling proxy on this server: the
// registration table is its Registry, the traversal server its
// Traversal, and Run serves it on both signal_port listeners.
func (s *Server) newCalls(cfg Config) (*callsig.Server, error) {
	cs, err := callsig.New(callsig.Config{
		Sides: [2]callsig.SideConfig{
			callsig.Outside: {Bind: cfg.ExternalRAS.Addr(), Advertise: cfg.PublicAddress, Interface: External, H245Ports: cfg.H245External},
			callsig.Inside:  {Bind: cfg.InternalSignal.Addr(), Interface: Internal, H245Ports: cfg.H245Internal},
		},
		MaxCalls: cfg.MaxCalls, SetupTimeout: cfg.SetupTimeout, AnswerTimeout: cfg.AnswerTimeout,
		DialTimeout: cfg.RequestTimeout, MediaTraversal: cfg.MediaTraversal,
		MediaKeepAliveInterval: cfg.MediaKeepAliveInterval, MediaKeepAlivePayloadType: uint8(cfg.MediaKeepAlivePayloadType),
	}, callsig.Deps{
		Logger:       s.deps.Logger,
		Media:        s.deps.Media,
		Route:        s.route,
		Policy:       s.decide,
		Registry:     registry{s},
		Traversal:    traversal{s},
		KeepAlive:    s.keepAlive,
		History:      s.deps.Calls,
		HistoryBatch: s.deps.CallBatch,
		Guard:        s.deps.Guard,
		Capture:      s.deps.Capture,
		Setup:        s.m.observeSetup,
		OnCall:       s.deps.OnCall,
		DialH245:     s.deps.DialH245,
	})
	if err != nil {
		return nil, err
	}
	s.m.register(s.deps.Registerer,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portico_h323_calls",
			Help: "H.323 calls in progress through Portico."}, func() float64 { return float64(cs.Calls()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_h323_calls_ended_total",
			Help: "H.323 calls that ended after both sides were connected."}, func() float64 { return float64(cs.Completed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_h323_calls_refused_total",
			Help: "H.323 calls Portico refused (policy, no route, callee not registered, limits)."}, func() float64 { return float64(cs.Rejected.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_h323_signalling_malformed_total",
			Help: "Call-signalling input that did not decode (answered with ReleaseComplete, cause 95)."}, func() float64 { return float64(cs.Malformed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_h323_history_dropped_total",
			Help: "H.323 call history records dropped because the store had fallen 4,096 records behind."}, func() float64 { return float64(cs.HistoryDropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_h323_signalling_keepalives_total",
			Help: "Keep-alives (empty TPKT or Facility) sent on call-signalling connections of H.460.18 endpoints."}, func() float64 { return float64(cs.KeepAlives.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_h323_call_loops_total",
			Help: "H.323 Setups refused as a call loop (cause 25): the call came back to Portico, or its hopCount ran out."}, func() float64 { return float64(cs.Loops.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_h323_h245_ports_exhausted_total",
			Help: "H.323 calls released (cause 47) because every port of an h323.h245_ports range was taken."}, func() float64 { return float64(cs.H245PortsExhausted.Load()) }))
	s.AttachSignalling(func(ctx context.Context, ln net.Listener, outside bool) error {
		side := callsig.Inside
		if outside {
			side = callsig.Outside
		}
		return cs.Serve(ctx, ln, side)
	})
	return cs, nil
}

// route sends a Setup from outside where the inside gatekeeper's ACF for
// the call pointed (an endpoint that asked admission through Portico),
// else to the gatekeeper's call-signalling address (gatekeeper_signal).
func (s *Server) route(_ context.Context, setup *h225.SetupUUIE, info callsig.CallInfo) (netip.AddrPort, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if setup != nil && setup.CallIdentifier != nil && len(setup.CallIdentifier.Guid) == 16 {
		if d, ok := s.dests[[16]byte(setup.CallIdentifier.Guid)]; ok && d.admits(info.To) {
			return d.addr, nil
		}
	}
	return s.cfg.GatekeeperSignal, nil
}

// admitted is a call the inside gatekeeper admitted by ACF: where it
// said the call goes and the aliases of the ARQ and the ACF.
type admitted struct {
	addr    netip.AddrPort
	aliases []string
}

// admits reports whether the ACF's address may carry a Setup to the
// destination the policy admitted (to): only when the admission was for
// that alias, or, dialled without an alias, neither names one. A Setup
// for another alias goes to the gatekeeper, which routes it by its alias.
func (a admitted) admits(to []string) bool {
	if len(a.aliases) == 0 {
		return len(to) == 0
	}
	for _, t := range to {
		if slices.Contains(a.aliases, t) {
			return true
		}
	}
	return false
}

// caller names who places a call from outside: "registered" when one of
// its aliases is registered through Portico from the call's source
// address, "federated" when it comes from a neighbour gatekeeper's IP (or
// a source whose LRQ Portico confirmed), else "guest".
func (s *Server) caller(info callsig.CallInfo) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range info.From {
		if r := s.regs.byAlias[a]; r != nil && r.src.Addr() == info.Source {
			return policy.CallerRegistered
		}
	}
	// A registered gateway (a traversal client's zone) calls for aliases
	// of its own network: admitted by ARQ for this call, from its address.
	if len(info.CallID) == 16 {
		if r := s.calls[[16]byte(info.CallID)]; r != nil && s.regs.byOut[r.outsideID] == r && r.src.Addr() == info.Source {
			return policy.CallerRegistered
		}
	}
	if s.federated(info.Source) || s.zoneAt(info.Source) != nil {
		return policy.CallerFederated
	}
	return policy.CallerGuest
}

// decide evaluates the call policy (Deps.Policy: the policy rules, then
// the guest rules) for each dialled alias, protocol h323; the first
// alias allowed admits the call.
func (s *Server) decide(info callsig.CallInfo) callsig.Decision {
	kind := s.caller(info)
	label := kind
	if zc := s.zoneAt(info.Source); zc != nil {
		label = "zone:" + zc.z.Name // history names the traversal zone
	}
	if s.deps.Policy == nil {
		return callsig.Decision{Allow: true, CallType: label}
	}
	to := info.To
	if len(to) == 0 {
		to = []string{""}
	}
	var d policy.Decision
	for _, a := range slices.Compact(slices.Clone(to)) {
		d = s.deps.Policy(policy.Call{Caller: kind, Source: info.Source, Protocol: "h323", To: a})
		if d.Allowed() {
			// The call goes to the alias admitted, or to where a rewrite
			// or route rule sends it; the Setup inside names only that.
			dest := a
			if d.Destination != "" {
				dest = d.Destination
			}
			return callsig.Decision{Allow: true, CallType: label, To: dest}
		}
	}
	reason := "destination not allowed"
	if d.Rule != "" {
		reason += " (rule " + d.Rule + ")"
	}
	return callsig.Decision{Allow: false, Reason: reason, CallType: label}
}

// registry adapts the registration table to callsig.Registry.
type registry struct{ s *Server }

func (r registry) Outside(alias string) (callsig.Endpoint, bool) {
	if zep, ok := r.s.zoneRoute(alias); ok {
		return zep, true
	}
	ep, ok := r.s.Outside(alias)
	if !ok {
		ep, ok = r.s.neighbourRoute(alias)
	}
	return callsig.Endpoint{ID: ep.ID, CallSignal: ep.CallSignal, H46018: ep.H46018, H46019: ep.H46019, H46019Multiplex: ep.H46019Multiplex}, ok
}

// traversal adapts the traversal server to callsig.Traversal.
type traversal struct{ s *Server }

func (t traversal) Connect(ctx context.Context, ep callsig.Endpoint, callID [16]byte) (net.Conn, error) {
	return t.s.Connect(ctx, Endpoint{ID: ep.ID, CallSignal: ep.CallSignal, H46018: ep.H46018}, callID)
}

func (t traversal) Arrived(callID [16]byte, c net.Conn) bool { return t.s.Arrived(callID, c) }

// Call is one live call as the API lists it (callsig.LiveCall).
type Call = callsig.LiveCall

// ErrNoCall is returned by Hangup for an id no live call has.
var ErrNoCall = callsig.ErrNoCall

// LiveCalls lists the calls in progress with their legs and relay streams;
// none when the edge runs without media (RAS only).
func (s *Server) LiveCalls() []Call {
	if s.cs == nil {
		return nil
	}
	return s.cs.Live()
}

// Hangup ends a live call: ReleaseComplete to both sides, the relay
// released, and the history disposition "ended by administrator".
func (s *Server) Hangup(id string) error {
	if s.cs == nil {
		return fmt.Errorf("%w: %s", ErrNoCall, id)
	}
	return s.cs.Hangup(id)
}

// CallState is an answered call as the HA peer keeps it.
type CallState = callsig.CallState

// CallKeys lists the answered calls in progress (callsig.Server.CallKeys).
func (s *Server) CallKeys() []string {
	if s.cs == nil {
		return nil
	}
	return s.cs.CallKeys()
}

// ExportCall returns an answered call's state (callsig.Server.ExportCall).
func (s *Server) ExportCall(id string) (CallState, bool) {
	if s.cs == nil {
		return CallState{}, false
	}
	return s.cs.ExportCall(id)
}

// ImportCall keeps an answered call of the HA peer
// (callsig.Server.ImportCall); without media the edge has no calls.
func (s *Server) ImportCall(st CallState) error {
	if s.cs == nil {
		return fmt.Errorf("%w: h323 calls need the media relay", callsig.ErrClosed)
	}
	return s.cs.ImportCall(st)
}

// ForgetCall drops the HA peer's call id (callsig.Server.ForgetCall).
func (s *Server) ForgetCall(id string) {
	if s.cs != nil {
		s.cs.ForgetCall(id)
	}
}

// LoseCall handles a call the restarted HA peer no longer holds
// (callsig.Server.LoseCall).
func (s *Server) LoseCall(id string) {
	if s.cs != nil {
		s.cs.LoseCall(id)
	}
}
