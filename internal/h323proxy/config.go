package h323proxy

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
)

// Config is the validated form of the h323 section (see Section.Config).
type Config struct {
	// ExternalRAS is where outside endpoints send RAS (port 1719 by
	// default); Run binds it.
	ExternalRAS netip.AddrPort
	// PublicAddress is the external IP announced in GCF and RCF (static
	// NAT). Default: ExternalRAS's address.
	PublicAddress netip.Addr
	// InternalRAS is the socket toward the inside gatekeeper: the rasAddress
	// the inside sees for every proxied endpoint. Port 0: any.
	InternalRAS netip.AddrPort
	// ExternalSignalPort is the port of Portico's outside call-signalling
	// listener (1720), announced in RCF, ACF, LCF and SCI.
	ExternalSignalPort uint16
	// InternalSignal is Portico's inside call-signalling listener, put in
	// every RRQ, ARQ and URQ sent inside (port 1720 by default).
	InternalSignal netip.AddrPort
	// Gatekeeper is the inside gatekeeper's RAS address. Required.
	Gatekeeper netip.AddrPort
	// GatekeeperID is the inside gatekeeper's identifier put in RRQs sent
	// inside; empty: none (the inside's RCF tells it, and later requests
	// carry that).
	GatekeeperID string
	// OutsideGatekeeperID is the identifier outside endpoints see. Default
	// "portico".
	OutsideGatekeeperID string
	// TimeToLive is the registration lifetime granted outside (RCF
	// timeToLive): an endpoint silent for longer is unregistered inside.
	// Default 300s.
	TimeToLive time.Duration
	// KeepAliveInterval is the H.460.18 keepAliveInterval put in the RCF of
	// traversal endpoints; it also bounds their TimeToLive. Default 19s.
	KeepAliveInterval time.Duration
	// Traversal offers H.460.18 to endpoints that ask for it. Default on.
	Traversal bool
	// MediaTraversal confirms H.460.19 to endpoints that offer it with
	// H.460.18 and is their media traversal server in calls. Default on.
	MediaTraversal bool
	// MediaKeepAlivePayloadType is the H.460.19 keepAlivePayloadType
	// Portico offers outside endpoints: a dynamic RTP payload type, 96 to
	// 127. Default 127.
	MediaKeepAlivePayloadType int
	// MediaKeepAliveInterval is the H.460.19 keepAliveInterval asked of
	// them: whole seconds, 1s to 60s. Default 19s.
	MediaKeepAliveInterval time.Duration
	// MaxRegistrations bounds the table; beyond it an RRQ gets RRJ
	// resourceUnavailable. Default 10000.
	MaxRegistrations int
	// SocketBuffer is the receive buffer of each RAS socket in bytes, so
	// that a burst of keep-alives waits in the kernel while the read loop
	// is not scheduled. Default 4 MiB (DefaultSocketBuffer); -1 keeps the
	// kernel's default. Without CAP_NET_ADMIN the kernel caps it at
	// net.core.rmem_max; what it granted is logged and exported
	// (portico_h323_ras_receive_buffer_bytes).
	SocketBuffer int
	// MaxPending bounds the transactions in flight toward each side; beyond
	// it a request is dropped (the endpoint retries). Default 4096.
	MaxPending int
	// RequestTimeout is how long a relayed request waits for its answer.
	// Default 10s.
	RequestTimeout time.Duration
	// GatekeeperSignal is where a Setup from outside goes when the inside
	// gatekeeper's ACF named no destination for the call (guests, callers
	// that skip ARQ): the gatekeeper's call-signalling address. Default:
	// Gatekeeper's IP, port 1720.
	GatekeeperSignal netip.AddrPort
	// MaxCalls caps calls in progress (default 1000); one more is answered
	// with ReleaseComplete, cause 47.
	MaxCalls int
	// SetupTimeout bounds the wait for the first message of a new
	// call-signalling connection (default 10s); AnswerTimeout a call from
	// Setup to Connect (default 180s).
	SetupTimeout, AnswerTimeout time.Duration
	// Neighbours are the outside gatekeepers Portico federates with
	// (federation.go); OpenB2B also accepts LRQs from any source.
	Neighbours []Neighbour
	OpenB2B    bool
	// DNSServer is the resolver for _h323ls._udp lookups of alias@domain
	// (OpenB2B); invalid: the system's.
	DNSServer netip.AddrPort
	// Zones are the traversal servers Portico registers to as an H.460.18
	// client (zone.go).
	Zones []Zone
	// KeepAlives pick the TCP keep-alive methods of H.460.18 endpoints by
	// vendor, before DefaultKeepAlives (keepalive.go).
	KeepAlives []KeepAliveRule
	// H245External and H245Internal are the ranges of the listeners
	// Portico opens for separate H.245 connections on each side (zero:
	// any free port). A call that finds its range full is released with
	// cause 47 and counted (portico_h323_h245_ports_exhausted_total).
	H245External, H245Internal h245proxy.PortRange
}

// Defaults of Config (and of the h323 section).
const (
	DefaultRASPort           = 1719
	DefaultSignalPort        = 1720
	DefaultOutsideGatekeeper = "portico"
	DefaultTimeToLive        = 300 * time.Second
	DefaultKeepAliveInterval = 19 * time.Second
	// DefaultMediaKeepAliveInterval and DefaultMediaKeepAlivePayloadType
	// are H.460.19's usual values.
	DefaultMediaKeepAliveInterval    = h245proxy.DefaultKeepAliveInterval
	DefaultMediaKeepAlivePayloadType = h245proxy.DefaultKeepAlivePayloadType
	DefaultMaxRegistrations          = 10000
	DefaultSocketBuffer              = 4 << 20
	defaultMaxPending                = 4096
	defaultRequestTimeout            = 10 * time.Second
	maxDatagram                      = 4096
	// maxPendingPerSource bounds the requests one outside address has in
	// flight toward the inside.
	maxPendingPerSource = 64
	// historyQueue bounds the registration events waiting for the store.
	historyQueue = 1024
)

// withDefaults fills zero fields and validates; errors name the fields
// of the h323 section.
func (c Config) withDefaults() (Config, error) {
	var es field.Errors
	if !c.PublicAddress.IsValid() {
		c.PublicAddress = c.ExternalRAS.Addr()
	}
	if c.ExternalSignalPort == 0 {
		c.ExternalSignalPort = DefaultSignalPort
	}
	if c.OutsideGatekeeperID == "" {
		c.OutsideGatekeeperID = DefaultOutsideGatekeeper
	}
	if c.TimeToLive == 0 {
		c.TimeToLive = DefaultTimeToLive
	}
	if c.KeepAliveInterval == 0 {
		c.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if c.MaxRegistrations == 0 {
		c.MaxRegistrations = DefaultMaxRegistrations
	}
	if c.MediaKeepAliveInterval == 0 {
		c.MediaKeepAliveInterval = DefaultMediaKeepAliveInterval
	}
	if c.MediaKeepAlivePayloadType == 0 {
		c.MediaKeepAlivePayloadType = DefaultMediaKeepAlivePayloadType
	}
	switch d := c.MediaKeepAliveInterval; {
	case d < time.Second || d > 60*time.Second:
		es.Add("h323.media_keep_alive_interval", "%s is not between 1s and 60s", d)
	case d%time.Second != 0:
		es.Add("h323.media_keep_alive_interval", "%s is not a whole number of seconds (H.460.19 counts in seconds)", d)
	}
	if pt := c.MediaKeepAlivePayloadType; pt < 96 || pt > 127 {
		es.Add("h323.media_keep_alive_payload_type", "%d is not a dynamic RTP payload type (96-127)", pt)
	}
	if c.MaxPending == 0 {
		c.MaxPending = defaultMaxPending
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	switch {
	case c.SocketBuffer == 0:
		c.SocketBuffer = DefaultSocketBuffer
	case c.SocketBuffer == -1:
	case c.SocketBuffer < 4096 || c.SocketBuffer > 64<<20:
		es.Add("h323.ras_socket_buffer", "%d bytes is outside 4096..67108864 (or -1 for the kernel default)", c.SocketBuffer)
	}
	if !c.GatekeeperSignal.IsValid() && c.Gatekeeper.IsValid() {
		c.GatekeeperSignal = netip.AddrPortFrom(c.Gatekeeper.Addr(), DefaultSignalPort)
	}
	if c.MaxCalls < 0 {
		es.Add("h323.max_calls", "%d is negative", c.MaxCalls)
	}
	if c.SetupTimeout < 0 || c.AnswerTimeout < 0 {
		es.Add("h323.answer_timeout", "timeouts are not negative")
	}
	if !c.ExternalRAS.Addr().IsValid() {
		es.Add("h323.external_address", "an external address is required (interfaces.external.address)")
	} else if c.PublicAddress.IsUnspecified() {
		// GCF, RCF, ACF, LCF and SCI announce it: it must be reachable.
		es.Add("h323.external_address", "%s cannot be announced to endpoints; bind a specific address or set interfaces.external.public_address", c.PublicAddress)
	}
	if !c.InternalRAS.Addr().IsValid() || !c.InternalSignal.Addr().IsValid() {
		es.Add("h323.internal_address", "an internal address is required (interfaces.internal.address)")
	}
	if !c.Gatekeeper.IsValid() || c.Gatekeeper.Port() == 0 {
		es.Add("h323.gatekeeper", "the inside gatekeeper's address is required: an enabled h323 section has nothing to proxy without it")
	}
	if c.TimeToLive < time.Second {
		es.Add("h323.time_to_live", "%s is below 1s", c.TimeToLive)
	}
	if c.KeepAliveInterval < time.Second || c.KeepAliveInterval > c.TimeToLive {
		es.Add("h323.keep_alive_interval", "%s is not between 1s and time_to_live", c.KeepAliveInterval)
	}
	if c.MaxRegistrations < 0 {
		es.Add("h323.max_registrations", "%d is negative", c.MaxRegistrations)
	}
	for i, n := range c.Neighbours {
		if !n.RAS.Addr().IsValid() || n.RAS.Port() == 0 {
			es.Add(fmt.Sprintf("h323.neighbours[%d].address", i), "the neighbour's RAS address (ip:port) is required")
		}
	}
	for _, r := range []struct {
		path string
		r    h245proxy.PortRange
	}{{"h323.h245_ports.external", c.H245External}, {"h323.h245_ports.internal", c.H245Internal}} {
		switch {
		case !r.r.Valid():
			es.Add(r.path, "%d-%d is not a range of ports (min 1-65535, max not below min)", r.r.Min, r.r.Max)
		case !r.r.IsZero() && r.r.Min <= c.ExternalSignalPort && c.ExternalSignalPort <= r.r.Max:
			es.Add(r.path, "%d-%d holds the call-signalling port %d", r.r.Min, r.r.Max, c.ExternalSignalPort)
		}
	}
	c.validateZones(&es)
	c.validateKeepAlives(&es)
	if len(c.OutsideGatekeeperID) > 128 || len(c.GatekeeperID) > 128 {
		es.Add("h323.gatekeeper_id", "gatekeeper identifiers are at most 128 characters")
	}
	return c, es.Err()
}
