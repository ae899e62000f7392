package h323test

import "errors"

// Errors of the simulator and the minimal gatekeeper.
var (
	// ErrTimeout wraps a context's error when an awaited message or
	// packet did not come.
	ErrTimeout = errors.New("h323test: timed out")
	// ErrRejected is returned when the peer rejected a request (RRJ, ARJ,
	// GRJ, ReleaseComplete before Connect).
	ErrRejected = errors.New("h323test: rejected")
	// ErrNoRemote is returned when media is sent before the peer signalled
	// where it receives.
	ErrNoRemote = errors.New("h323test: peer media address unknown")
	// ErrClosed is returned by a closed endpoint, gatekeeper or call.
	ErrClosed = errors.New("h323test: closed")
	// ErrNotRegistered is returned for an unregistered endpoint or alias.
	ErrNotRegistered = errors.New("h323test: not registered")
)
