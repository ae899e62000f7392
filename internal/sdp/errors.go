package sdp

import "errors"

// Sentinel errors; wrapped with context by Parse and Rewrite.
var (
	ErrEmpty     = errors.New("empty description")
	ErrTooLarge  = errors.New("description too large")
	ErrMalformed = errors.New("malformed description")
	ErrNoAddress = errors.New("stream has no connection address")
	ErrMismatch  = errors.New("endpoint count does not match streams")
)
