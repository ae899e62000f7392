package tunnel

import "errors"

var (
	// ErrHeader reports a flow header that is malformed or truncated.
	ErrHeader = errors.New("tunnel: bad flow header")
	// ErrNotEnrolled reports a client that has no pinned server certificate.
	ErrNotEnrolled = errors.New("tunnel: not enrolled")
	// ErrToken reports an enrollment token that is malformed or unknown.
	ErrToken = errors.New("tunnel: wrong enrollment token")
	// ErrTokenUsed reports an enrollment token presented a second time.
	ErrTokenUsed = errors.New("tunnel: enrollment token already used")
	// ErrTokenExpired reports an enrollment token past its expiry.
	ErrTokenExpired = errors.New("tunnel: enrollment token expired")
	// ErrUnknownPeer reports a peer certificate that is not pinned.
	ErrUnknownPeer = errors.New("tunnel: peer certificate not pinned")
	// ErrNoPeer reports that no tunnel connection is up.
	ErrNoPeer = errors.New("tunnel: no peer connected")
	// ErrUnknownService reports a service name that is not configured.
	ErrUnknownService = errors.New("tunnel: unknown service")
	// ErrNoServer reports an SRV record that names no tunnel server.
	ErrNoServer = errors.New("tunnel: no server in the SRV record")
	// ErrRefused reports that the server refused an enrollment.
	ErrRefused = errors.New("tunnel: enrollment refused")
	// ErrVersion reports a peer that speaks another version of the tunnel
	// protocol: both ends must run the same build.
	ErrVersion = errors.New("tunnel: peer speaks another tunnel protocol version")
	// ErrServerChanged reports a server that presents a certificate this
	// client has not pinned: it was rotated while the client was away.
	ErrServerChanged = errors.New("tunnel: " + ProblemServerChanged)
)

// Errors of DialTo.
var (
	// ErrDialRefused reports a dial destination the peer does not allow
	// (outside the dial service's networks).
	ErrDialRefused = errors.New("tunnel: dial destination refused by the peer")
	// ErrDialFailed reports a dial the peer could not connect.
	ErrDialFailed = errors.New("tunnel: dial failed at the peer")
)

// ProblemServerChanged is Stats.Problem while the client's pin is stale.
const ProblemServerChanged = "server certificate changed: re-enroll"

// ServerChangedError is a connection refused because the server presented
// the certificate Presented, which is not pinned.
type ServerChangedError struct {
	Presented string
	Err       error
}

func (e *ServerChangedError) Error() string {
	return ErrServerChanged.Error() + " (presented " + e.Presented + "): " + e.Err.Error()
}

// Unwrap gives ErrServerChanged and the handshake's error.
func (e *ServerChangedError) Unwrap() []error { return []error{ErrServerChanged, e.Err} }
