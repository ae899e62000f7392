package snmp

import "time"

// Provider gives the agent the node's state. The node implements it from
// the same sources as its Prometheus metrics and API, so the agent knows
// nothing of the services themselves.
type Provider interface {
	Snapshot() Snapshot
}

// Snapshot is the node's state at one moment.
type Snapshot struct {
	Node          string
	Version       string
	Started       time.Time
	Ready         bool
	StoreUp       bool
	ConfigVersion int64
	// Services are the readiness checks (services, listeners, the store).
	Services []Service
	// Protocols are the signalling protocols (sip, h323).
	Protocols []Protocol
	Relay     Relay
	// TURNAllocations is the number of live TURN allocations.
	TURNAllocations uint64
	// Tunnel is the tunnel's state: "disabled", "up", "down" or another
	// word the tunnel uses.
	Tunnel string
	// HA is this node's role: "disabled", or each VIP group's VRID and state
	// ("51 master, 52 backup").
	HA           string
	Certificates []Certificate
	// CapacityRefused counts, per limit, what was refused because the
	// limit was reached (connections at max_conns, TURN allocations at
	// the total quota or without a port). A rise sends capacityReached.
	CapacityRefused map[string]uint64
}

// Service is one readiness check.
type Service struct {
	Name  string
	Up    bool
	Error string
}

// Protocol is one signalling protocol's counts.
type Protocol struct {
	Name          string
	Registrations uint64
	ActiveCalls   uint64
	CallsTotal    uint64
}

// Relay is the media relay's counters.
type Relay struct {
	Sessions    uint64
	Packets     uint64
	Bytes       uint64
	PacketsLost uint64
}

// Certificate is one certificate of the certificate store.
type Certificate struct {
	Name     string
	NotAfter time.Time
}
