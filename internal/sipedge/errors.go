package sipedge

import "errors"

// Sentinel errors.
var (
	// ErrClosed is returned by Run and Serve after Close.
	ErrClosed = errors.New("sipedge: server closed")
	// ErrNoCall is returned by Hangup for an unknown call.
	ErrNoCall = errors.New("sipedge: no such call")
	// ErrNoCallServer means every call server is down or none is configured.
	ErrNoCallServer = errors.New("sipedge: no call server available")
	// ErrBadFlowToken means a flow token failed its integrity check.
	ErrBadFlowToken = errors.New("sipedge: bad flow token")
	// ErrHandoffUpgrade means a connection given to WSHandoff did not send
	// a complete WebSocket upgrade request (HTTP head, at most 8 KiB) in 10s.
	ErrHandoffUpgrade = errors.New("sipedge: handoff: no WebSocket upgrade request")
)

// FieldError is one invalid configuration field.
type FieldError struct {
	Path   string // e.g. "sip.call_servers[1].address"
	Reason string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Reason }

// ConfigError lists every invalid field found by New.
type ConfigError []FieldError

func (e ConfigError) Error() string {
	s := ""
	for i, f := range e {
		if i > 0 {
			s += "; "
		}
		s += f.Error()
	}
	return s
}

// errCallEnded means a call ended while work for it was in progress.
var errCallEnded = errors.New("sipedge: call ended")
