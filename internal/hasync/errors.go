package hasync

import "errors"

// Errors of the wire format and the link.
var (
	// ErrShort means the buffer ends inside a frame.
	ErrShort = errors.New("hasync: short frame")
	// ErrFrame means a frame is malformed.
	ErrFrame = errors.New("hasync: malformed frame")
	// ErrTooLarge means a frame is longer than the limit.
	ErrTooLarge = errors.New("hasync: frame too large")
	// ErrVersion means a frame has a version this build does not speak.
	ErrVersion = errors.New("hasync: unsupported version")
	// ErrPeer means the peer's certificate is not the one the secret derives.
	ErrPeer = errors.New("hasync: peer not authenticated")
)
