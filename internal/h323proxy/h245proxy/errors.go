package h245proxy

import "errors"

// Sentinel errors.
var (
	// ErrMalformed wraps an H.245 PDU or fastStart element that does not decode.
	ErrMalformed = errors.New("h245proxy: malformed H.245")
	// ErrMedia wraps a relay allocation failure.
	ErrMedia = errors.New("h245proxy: media relay")
	// ErrClosed is returned once the session is closed.
	ErrClosed = errors.New("h245proxy: session closed")
	// ErrAddress marks a transport address the proxy cannot relay (not IP).
	ErrAddress = errors.New("h245proxy: unsupported transport address")
	// ErrPorts reports an H.245 port range with every port in use.
	ErrPorts = errors.New("h245proxy: no free port in the H.245 port range")
)
