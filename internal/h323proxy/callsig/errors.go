package callsig

import "errors"

// Sentinel errors.
var (
	ErrConfig    = errors.New("callsig: invalid config")
	ErrMalformed = errors.New("callsig: malformed message")
	ErrNoRoute   = errors.New("callsig: no route")
	ErrClosed    = errors.New("callsig: server closed")
	// ErrNoCall is returned by Hangup for an id no live call has.
	ErrNoCall = errors.New("callsig: no such call")
)
