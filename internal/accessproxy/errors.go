package accessproxy

import "errors"

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrInvalidConfig wraps every validation failure from New and Reload.
	ErrInvalidConfig = errors.New("accessproxy: invalid config")
	// ErrListenersChanged means Reload was given different listen addresses;
	// the caller restarts the service (routes alone reload in place).
	ErrListenersChanged = errors.New("accessproxy: listen addresses changed; restart required")
	// ErrClosed is returned by Serve and Run after Close.
	ErrClosed = errors.New("accessproxy: server closed")
)
