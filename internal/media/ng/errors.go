package ng

import "errors"

// ErrExposed means the listener would accept control requests from beyond
// loopback and private networks with nothing to tell the SIP proxy from
// anyone else: Config.Allow or Config.Secret is required there.
var ErrExposed = errors.New("ng: listen address is reachable beyond loopback and private networks; set media.ng_allow or media.ng_secret")
