package accessproxy

import "errors"

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrInvalidConfig wraps every validation failure from New and Reload.
	ErrInvalidConfig = errors.New("accessproxy: invalid config")
	// ErrClosed is returned by Serve and Run after Close.
	ErrClosed = errors.New("accessproxy: server closed")
)

// Upstream errors of the lean HTTP path (transport.go); ReverseProxy turns
// them into 502.
var (
	// errHeaderTooLarge: the upstream's response header (with any 1xx
	// before it) passed maxResponseHeader.
	errHeaderTooLarge = errors.New("accessproxy: upstream response header too large")
	// errNoResponse is a reused connection's EOF before any byte of the
	// response: the upstream closed it while it sat idle.
	errNoResponse = errors.New("accessproxy: upstream closed an idle connection")
)
