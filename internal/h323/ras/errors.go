package ras

import "errors"

// ErrNotIP reports a transport address that is not an IPv4 or IPv6 one.
var ErrNotIP = errors.New("ras: not an IP transport address")

// ErrNoFeature reports a GenericData without the expected H.460 feature or
// parameter.
var ErrNoFeature = errors.New("ras: feature or parameter absent")
