package h323proxy

import "errors"

// ErrClosed is returned by Serve and Connect after Close.
var ErrClosed = errors.New("h323proxy: server closed")

// ErrNotTraversal reports a Connect for an endpoint that is not
// registered, or not registered with H.460.18.
var ErrNotTraversal = errors.New("h323proxy: endpoint is not registered for H.460.18 traversal")

// ErrNoAnswer reports an SCI the endpoint did not answer.
var ErrNoAnswer = errors.New("h323proxy: endpoint did not answer the service control indication")

// ErrNoConnection reports an endpoint that answered the SCI but did not
// open the call-signalling connection in time.
var ErrNoConnection = errors.New("h323proxy: endpoint answered the service control indication but did not connect")

// ErrNoLocation reports a domain whose DNS names no H.323 location
// service (_h323ls._udp SRV) Portico could resolve.
var ErrNoLocation = errors.New("h323proxy: no H.323 location service found in DNS")

// ErrNotRegistered is returned by Unregister for an alias no registration
// holds.
var ErrNotRegistered = errors.New("h323proxy: alias not registered")
