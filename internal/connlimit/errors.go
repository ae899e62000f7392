package connlimit

import "errors"

// errUnsupported is returned by the descriptor count on systems without
// /proc/self/fd; the Reserve then admits everything.
var errUnsupported = errors.New("connlimit: descriptor count not supported on this system")

// Refusal reasons, the values of the reason label of
// portico_listener_connections_refused_total.
const (
	ReasonMaxConns    = "max_conns"
	ReasonPerSource   = "per_source"
	ReasonDescriptors = "descriptors"
	ReasonHandshake   = "handshake_timeout"
	ReasonIdle        = "idle_timeout"
)
