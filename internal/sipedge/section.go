package sipedge

import (
	"errors"
	"fmt"

	"github.com/portico-edge/portico/internal/config/field"
)

// Section is the sip section of Portico's configuration document
// (docs/sip.md): its YAML shape, and its validation, which is New's. The
// edge runs from the Config that Section.Config derives from it.
type Section struct {
	// Enabled turns the SIP edge on; it needs the media relay (media.enabled).
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Listeners are the sockets to bind; each names its interface
	// (external or internal) and transport (udp, tcp, tls, ws, wss).
	Listeners []Listener `yaml:"listeners,omitempty" json:"listeners,omitempty"`
	// CallServers are the inside registrars/proxies, by priority then weight.
	CallServers []CallServer `yaml:"call_servers,omitempty" json:"call_servers,omitempty"`
	// Domain is the inside SIP domain. Default: the first call server's host.
	Domain string `yaml:"domain" json:"domain"`
	// ExternalHost is put in Contact, Via and Record-Route towards the
	// outside. Default: interfaces.external.public_address, else the
	// external listener's address.
	ExternalHost string `yaml:"external_host" json:"external_host"`
	// Certificate names the stored certificate for tls and wss listeners;
	// default: the default certificate.
	Certificate string `yaml:"certificate" json:"certificate"`
	// ProbeInterval of OPTIONS to call servers (10s); NATBindingExpiry caps
	// outside registrations (120s); UDPKeepalive sends OPTIONS to UDP flows
	// (off); NoAnswerTimeout bounds ringing (120s).
	ProbeInterval    field.Duration `yaml:"probe_interval" json:"probe_interval"`
	NATBindingExpiry field.Duration `yaml:"nat_binding_expiry" json:"nat_binding_expiry"`
	UDPKeepalive     field.Duration `yaml:"udp_keepalive" json:"udp_keepalive"`
	NoAnswerTimeout  field.Duration `yaml:"no_answer_timeout" json:"no_answer_timeout"`
	Guest            GuestPolicy    `yaml:"guest" json:"guest"`
	Federation       Federation     `yaml:"federation" json:"federation"`
	// MaxRegistrations (20000) and MaxCalls (5000) are answered beyond with
	// 503 and Retry-After.
	MaxRegistrations int `yaml:"max_registrations" json:"max_registrations"`
	MaxCalls         int `yaml:"max_calls" json:"max_calls"`
	// StripServer removes the outside endpoint's User-Agent from requests
	// relayed inside (the inside's Server never crosses).
	StripServer bool `yaml:"strip_server" json:"strip_server"`
	// RevealUnknownUsers relays the inside's refusal of an unauthenticated
	// outside REGISTER as it is; default false: answered as a challenge.
	RevealUnknownUsers bool `yaml:"reveal_unknown_users" json:"reveal_unknown_users"`
	// TCP bounds the connections of the tcp, tls, ws and wss listeners.
	TCP Streams `yaml:"tcp,omitempty" json:"tcp,omitempty"`
	// Capture bounds the signalling kept for ladder diagrams (docs/ladder.md).
	Capture CaptureBounds `yaml:"capture,omitempty" json:"capture,omitempty"`
	// Overload bounds the new INVITEs and REGISTERs taken on at once.
	Overload OverloadBounds `yaml:"overload,omitempty" json:"overload,omitempty"`
	// UDPReceiveBuffer is each UDP listener's kernel receive buffer in
	// bytes (default: the kernel's).
	UDPReceiveBuffer int `yaml:"udp_receive_buffer,omitempty" json:"udp_receive_buffer,omitempty"`
}

// OverloadBounds (sip.overload) are Overload's: zero fields take the
// defaults (max_in_flight 1000, max_queued 2000, max_wait 2s, retry_after
// 5s).
type OverloadBounds struct {
	MaxInFlight int            `yaml:"max_in_flight,omitempty" json:"max_in_flight,omitempty"`
	MaxQueued   int            `yaml:"max_queued,omitempty" json:"max_queued,omitempty"`
	MaxWait     field.Duration `yaml:"max_wait,omitempty" json:"max_wait,omitempty"`
	RetryAfter  field.Duration `yaml:"retry_after,omitempty" json:"retry_after,omitempty"`
}

// CaptureBounds (sip.capture) bound the signalling of recent calls kept
// in memory (package ladder); zero fields take the defaults: max_calls
// 500, max_call_bytes 262144 (256 KiB), max_bytes 33554432 (32 MiB).
// Off turns capture off: the sockets are not wrapped, nothing is kept and
// no live trace runs.
type CaptureBounds struct {
	Off          bool `yaml:"off,omitempty" json:"off,omitempty"`
	MaxCalls     int  `yaml:"max_calls,omitempty" json:"max_calls,omitempty"`
	MaxCallBytes int  `yaml:"max_call_bytes,omitempty" json:"max_call_bytes,omitempty"`
	MaxBytes     int  `yaml:"max_bytes,omitempty" json:"max_bytes,omitempty"`
}

// validate names each bound that is negative.
func (c CaptureBounds) validate() ConfigError {
	var errs ConfigError
	for _, f := range []struct {
		name string
		v    int
	}{{"max_calls", c.MaxCalls}, {"max_call_bytes", c.MaxCallBytes}, {"max_bytes", c.MaxBytes}} {
		if f.v < 0 {
			errs = append(errs, FieldError{Path: "sip.capture." + f.name, Reason: fmt.Sprintf("%d must not be negative (0: the default)", f.v)})
		}
	}
	return errs
}

// Streams (sip.tcp) bound each outside SIP stream listener's connections;
// zero fields take the defaults (max_conns 20000, max_conns_per_source
// 200, handshake_timeout 10s, idle_timeout twice nat_binding_expiry); a
// negative value turns that limit off.
type Streams struct {
	MaxConns          int            `yaml:"max_conns,omitempty" json:"max_conns,omitempty"`
	MaxConnsPerSource int            `yaml:"max_conns_per_source,omitempty" json:"max_conns_per_source,omitempty"`
	HandshakeTimeout  field.Duration `yaml:"handshake_timeout,omitempty" json:"handshake_timeout,omitempty"`
	IdleTimeout       field.Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty"`
}

// Validate checks an enabled section as New does (a disabled one may be
// incomplete); errors name the document's fields (sip.listeners[1].address).
func (s Section) Validate() error {
	if !s.Enabled {
		return nil
	}
	_, err := s.Config("").withDefaults()
	if cerrs := s.Capture.validate(); len(cerrs) > 0 {
		var errs ConfigError
		if !errors.As(err, &errs) && err != nil {
			return err
		}
		return append(errs, cerrs...)
	}
	return err
}

// Config derives the edge's Config; publicAddress (the external
// interface's static NAT address) is the default external host.
func (s Section) Config(publicAddress string) Config {
	c := Config{
		Listeners: s.Listeners, CallServers: s.CallServers,
		Domain: s.Domain, ExternalHost: s.ExternalHost,
		ProbeInterval: s.ProbeInterval.D(), NATBindingExpiry: s.NATBindingExpiry.D(),
		UDPKeepalive: s.UDPKeepalive.D(), NoAnswerTimeout: s.NoAnswerTimeout.D(),
		Guest: s.Guest, Federation: s.Federation,
		Limits:         Limits{MaxRegistrations: s.MaxRegistrations, MaxCalls: s.MaxCalls},
		TopologyHiding: TopologyHiding{StripServer: s.StripServer, RevealUnknownUsers: s.RevealUnknownUsers},
		Streams: StreamLimits{MaxConns: s.TCP.MaxConns, MaxConnsPerSource: s.TCP.MaxConnsPerSource,
			HandshakeTimeout: s.TCP.HandshakeTimeout.D(), IdleTimeout: s.TCP.IdleTimeout.D()},
		Overload: Overload{MaxInFlight: s.Overload.MaxInFlight, MaxQueued: s.Overload.MaxQueued,
			MaxWait: s.Overload.MaxWait.D(), RetryAfter: s.Overload.RetryAfter.D()},
		UDPReceiveBuffer: s.UDPReceiveBuffer,
	}
	if c.ExternalHost == "" {
		c.ExternalHost = publicAddress
	}
	return c
}
