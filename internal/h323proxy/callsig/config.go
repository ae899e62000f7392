package callsig

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/store"
)

// Side is h245proxy's: Outside (relay leg 0) or Inside (leg 1).
type Side = h245proxy.Side

// The two sides.
const (
	Outside = h245proxy.Outside
	Inside  = h245proxy.Inside
)

// SideConfig is Portico's presence on one side.
type SideConfig struct {
	// Bind is the local IP of connections Portico opens on this side and
	// of its H.245 listeners there. Required.
	Bind netip.Addr
	// Advertise is the IP written into messages sent to this side
	// (default Bind; set it behind a static NAT).
	Advertise netip.Addr
	// Interface names the media relay interface of this side
	// ("external", "internal").
	Interface string
	// H245Ports is the range of Portico's H.245 listeners on this side
	// (zero: any free port); a call that finds every port taken is
	// released with cause 47 resource unavailable.
	H245Ports h245proxy.PortRange
}

// Config bounds the proxy. Zero values take the defaults given.
type Config struct {
	// Sides is indexed by Side.
	Sides [2]SideConfig
	// MaxCalls caps calls in progress (default 1000); one more is answered
	// with ReleaseComplete, cause 47 resource unavailable.
	MaxCalls int
	// MaxFrame caps a TPKT payload in octets (default 16384).
	MaxFrame int
	// SetupTimeout bounds the wait for the first message of a new
	// connection (default 10s).
	SetupTimeout time.Duration
	// AnswerTimeout bounds a call from Setup to Connect (default 180s).
	AnswerTimeout time.Duration
	// DialTimeout bounds connecting to the called side (default 10s).
	DialTimeout time.Duration
	// KeepAlive is the TCP keep-alive idle time of answered calls; a
	// half-open connection ends after it plus 3 probes (default 30s).
	KeepAlive time.Duration
	// MediaTraversal makes Portico the H.460.19 media traversal server of
	// outside endpoints that offer H.460.19 (in their registration or
	// Setup).
	MediaTraversal bool
	// MediaKeepAliveInterval and MediaKeepAlivePayloadType are the
	// H.460.19 keepAliveInterval and keepAlivePayloadType asked of those
	// endpoints (zero: h245proxy's defaults, 19s and 127).
	MediaKeepAliveInterval    time.Duration
	MediaKeepAlivePayloadType uint8
}

func (c *Config) withDefaults() (Config, error) {
	o := *c
	for i := range o.Sides {
		sc := &o.Sides[i]
		if !sc.Bind.IsValid() {
			return o, fmt.Errorf("%w: sides[%d].bind: required", ErrConfig, i)
		}
		if !sc.Advertise.IsValid() {
			sc.Advertise = sc.Bind
		}
		if !sc.H245Ports.Valid() {
			return o, fmt.Errorf("%w: sides[%d].h245_ports: %d-%d is not a range of ports", ErrConfig, i, sc.H245Ports.Min, sc.H245Ports.Max)
		}
	}
	if o.MaxCalls <= 0 {
		o.MaxCalls = 1000
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = h245proxy.DefaultMaxFrame
	}
	if o.MaxFrame > 65531 {
		return o, fmt.Errorf("%w: max_frame: %d above TPKT's 65531", ErrConfig, o.MaxFrame)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.SetupTimeout, 10*time.Second)
	def(&o.AnswerTimeout, 180*time.Second)
	def(&o.DialTimeout, 10*time.Second)
	def(&o.KeepAlive, 30*time.Second)
	return o, nil
}

// Endpoint is a registered outside endpoint.
type Endpoint struct {
	// Dial, when set, opens the connection to the callee (a traversal
	// zone: admission by ARQ at the remote edge, then a connection Portico
	// opens); the fields below it are not used then.
	Dial func(ctx context.Context, callID [16]byte) (net.Conn, error)
	// CallType labels the history record (default "inbound").
	CallType string
	// ID is the endpointIdentifier the gatekeeper assigned.
	ID string
	// CallSignal is its call-signalling address as seen from outside (its
	// NAT binding).
	CallSignal netip.AddrPort
	// H46018 marks an endpoint behind NAT that is reached through the
	// traversal server (H.460.18 SCI, then it connects to Portico).
	H46018 bool
	// H46019 marks one whose media traversal server Portico is (H.460.19);
	// H46019Multiplex one that can also transmit multiplexed media.
	H46019, H46019Multiplex bool
}

// Registry is implemented by h323proxy's registration table.
type Registry interface {
	// Outside returns the outside endpoint registered under alias.
	Outside(alias string) (Endpoint, bool)
}

// Traversal is implemented by h323proxy (SCI/SCR and the Facility binding).
type Traversal interface {
	// Connect asks an H.460.18 endpoint to open a call-signalling
	// connection to Portico for callID and returns it once it arrived.
	Connect(ctx context.Context, ep Endpoint, callID [16]byte) (net.Conn, error)
	// Arrived hands over an outside connection whose first message was a
	// Facility for callID (H.460.18 §7.1); true when a Connect took it.
	Arrived(callID [16]byte, conn net.Conn) bool
}

// CallInfo is what the policy decides on.
type CallInfo struct {
	// From are the caller's aliases, To the called ones (destinationAddress
	// and the called party number).
	From, To []string
	// Source is the IP the Setup came from.
	Source netip.Addr
	// CallID is the Setup's callIdentifier (16 octets), if any.
	CallID []byte
}

// Decision is the policy's answer for a call from outside.
type Decision struct {
	Allow bool
	// Reason is recorded in history as "policy: <reason>" when denied
	// (default "destination not allowed").
	Reason string
	// CallType labels the history row: "registered", "guest", "federation".
	CallType string
	// To is the alias the admitted call goes to: the dialled alias the
	// policy allowed, or the destination a rewrite rule (such as a guest's
	// default destination) put in its place. When set, the Setup sent
	// inside names it alone, in destinationAddress and the called party
	// number, so the inside cannot route on an alias the policy did not
	// admit. Empty leaves the Setup's destination as dialled.
	To string
}

// Deps are the proxy's collaborators.
type Deps struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Media allocates relay ports (a *media.Relay). Required.
	Media h245proxy.Media
	// Route returns where a Setup from outside goes: the inside
	// gatekeeper's call-signalling address, or the destCallSignalAddress
	// the RAS proxy learned from ACF. info.To is the
	// destination the policy admitted (Decision.To) when it named one.
	// Required.
	Route func(ctx context.Context, setup *h225.SetupUUIE, info CallInfo) (netip.AddrPort, error)
	// Policy admits calls from outside; nil admits all.
	Policy func(CallInfo) Decision
	// Registry finds outside endpoints for calls from inside; nil: none.
	Registry Registry
	// Traversal reaches H.460.18 endpoints; nil: they cannot be called.
	Traversal Traversal
	// KeepAlive returns how to keep the outside connection to remote
	// alive (an H.460.18 endpoint's NAT binding); false or nil: TCP
	// keep-alives only.
	KeepAlive func(remote netip.AddrPort) (KeepAlive, bool)
	// History receives one record per call (protocol "h323"), and
	// HistoryBatch, when set instead, several at once; optional. One
	// goroutine calls them, never a call's own (history.go).
	History      func(store.CallRecord)
	HistoryBatch func([]store.CallRecord)
	// DialH245, when set, connects Portico to the H.245 address an inside
	// endpoint announced, in place of a direct connection: through the
	// tunnel's dial service on a DMZ node that cannot reach inside
	// endpoints. Optional.
	DialH245 func(ctx context.Context, to netip.AddrPort) (net.Conn, error)
	// Guard is told of, and asked about, outside sources; optional.
	Guard Guard
	// Capture keeps each call's Q.931 messages, decoded to text, for its
	// ladder diagram (capture.go); optional.
	Capture Capture
	// Setup receives, once per call, the moments its setup passed through
	// Portico, when the called side's Connect has been forwarded; optional.
	// It runs on the call's goroutine and must not block.
	Setup func(SetupTimes)
	// OnCall is told the ID of a call when it is answered and when an
	// answered call ends, so that its state can be replicated to the HA
	// peer (Server.ExportCall); optional. It must return at once.
	OnCall func(id string)
}

// SetupTimes are the moments a call's setup passed through Portico, each
// taken on Portico's clock as the step ended.
type SetupTimes struct {
	// Read: the caller's Setup read from its connection.
	Read time.Time
	// Admitted: the guard, the policy and the route decided.
	Admitted time.Time
	// Dialled: the connection to the called side open.
	Dialled time.Time
	// Forwarded: the Setup, rewritten (relay ports allocated for its
	// fastStart), written to the called side.
	Forwarded time.Time
	// Answered: the called side's Connect read.
	Answered time.Time
	// Connected: the Connect, rewritten, written to the caller.
	Connected time.Time
}

// Guard is the edge's per-source protection (a *guard.Guard). Only the
// outside is guarded: a blocked source's connection is closed unread; a
// Setup counts as guard.Invite, a malformed message as guard.Malformed,
// a policy refusal as guard.Forbidden and an unroutable call as
// guard.NotFound.
type Guard interface {
	Blocked(src netip.Addr) bool
	Observe(src netip.Addr, k guard.Kind) bool
}
