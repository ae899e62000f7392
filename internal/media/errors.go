package media

import "errors"

// Sentinel errors of the relay API.
var (
	// ErrNoPorts means an interface's port range has no free port pair.
	ErrNoPorts = errors.New("media: no free port pair in range")
	// ErrNoSession means the session ID is unknown (released or never allocated).
	ErrNoSession = errors.New("media: no such session")
	// ErrClosed means the relay has been closed.
	ErrClosed = errors.New("media: relay closed")
	// ErrUnknownInterface means a session named an interface not in Config.
	ErrUnknownInterface = errors.New("media: unknown interface")
	// ErrInvalidStream means a stream description cannot be relayed.
	ErrInvalidStream = errors.New("media: invalid stream")
)
