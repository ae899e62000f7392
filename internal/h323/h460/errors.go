package h460

import "errors"

// ErrNoParameters is returned when an H.460.19 genericInformation element
// carries no TraversalParameters (parameter 1) or an H.460.18 indication no
// callIdentifier.
var ErrNoParameters = errors.New("h460: no traversal parameters")

// ErrBadValue is returned when a parameter has a value of the wrong kind
// or size.
var ErrBadValue = errors.New("h460: parameter value of the wrong kind")
