package sipedge

import (
	"errors"

	"github.com/portico-edge/portico/internal/config/field"
)

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
	// ErrNoBinding is returned by Forget when no live binding matches.
	ErrNoBinding = errors.New("sipedge: no such binding")
	// ErrNotReplicable means a registration cannot be kept by the HA peer
	// (a flow other than UDP, or no address of record or contact).
	ErrNotReplicable = errors.New("sipedge: registration not replicable")
)

// FieldError is one invalid configuration field, e.g. at
// "sip.call_servers[1].address" (the shared configuration field error).
type FieldError = field.Error

// ConfigError lists every invalid field found by New and Reload.
type ConfigError = field.Errors

// errCallEnded means a call ended while work for it was in progress.
var errCallEnded = errors.New("sipedge: call ended")
