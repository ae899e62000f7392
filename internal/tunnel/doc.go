// Package tunnel carries an inside node's services to the DMZ node over one
// outbound QUIC connection (RFC 9000), so the inside firewall opens nothing
// inbound.
//
// The DMZ node runs a Server, which listens; the inside node runs a Client,
// which dials out and reconnects with jittered exponential backoff when the
// path fails. Both sides authenticate with TLS 1.3 certificates pinned at
// enrollment: the Server issues a one-time token (CreateToken) that names its
// own certificate fingerprint; the Client presents the token once over the
// "portico-enroll/1" ALPN, and each side stores the other's fingerprint.
// Afterwards the "portico-tunnel/2" ALPN accepts only the pinned peer; a
// peer of the older "portico-tunnel/1" is refused with ErrVersion.
//
// Each TCP flow is a QUIC stream; UDP packets ride in RFC 9221 datagrams,
// each datagram a bundle of the packets queued when the sender ran
// (ParseBundle). Streams and bundle entries start with the same small
// Header naming the service and the flow.
// Either end may offer a service (Listen) whose flows the other end
// delivers to its Target: the DMZ node offers inside servers to outside
// users, and the inside node offers DMZ servers to inside ones (reverse
// services) over the connection it dialed. A UDP service may span a port
// range; a flow's port index rides in the top bits of its identifier.
// A client without a server address finds it from a DNS SRV record
// (RFC 2782). Several clients may connect to one server; the server routes
// each service through the client that ranks it highest, or spreads its
// flows over all of them (clients.go). A client whose pinned server
// certificate was rotated while it was away reports it and enrolls again,
// keeping its identity.
// Datagrams wait in a bounded queue; a datagram that does not fit the path's
// datagram size is counted and dropped, never fragmented.
//
// Lock discipline: Server and Client keep the live connection in an
// atomic.Pointer; flow tables are guarded by their own mutex and never held
// across I/O. Every goroutine is owned by Run and has ended when Run returns.
package tunnel
