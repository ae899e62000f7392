package turn

import "errors"

var (
	// ErrUnknownUser is returned by a UserStore that has no such user.
	ErrUnknownUser = errors.New("turn: unknown user")
	// ErrClosed is returned by Run, Serve and HandleConn after Close.
	ErrClosed = errors.New("turn: server closed")
	// ErrNotServing is returned by HandleConn when neither Run nor Serve is
	// running.
	ErrNotServing = errors.New("turn: not serving")
	// ErrAlreadyServing is returned by a second concurrent Run or Serve.
	ErrAlreadyServing = errors.New("turn: already serving")
	// ErrTooManyConns is returned by HandleConn past listen.max_conns.
	ErrTooManyConns = errors.New("turn: too many stream connections")

	errQuotaUser  = errors.New("turn: per-user allocation quota reached")
	errQuotaTotal = errors.New("turn: total allocation quota reached")
	errNoPort     = errors.New("turn: no free relay port")
	errPortRange  = errors.New("turn: requested port outside the relay range")
	errFamily     = errors.New("turn: address family not served")
	errStaleNonce = errors.New("turn: stale or foreign nonce")
	errOwnAddress = errors.New("turn: peer is one of the node's own addresses")
	// errEngineNonce means the TURN engine no longer has the nonce manager
	// field installNonces sets (a pion upgrade changed it).
	errEngineNonce = errors.New("turn: cannot install address-bound nonces in the engine")
)
