// Package turn is Portico's STUN/TURN service: STUN binding (RFC 8489),
// TURN relaying (RFC 8656) over UDP, TCP, TLS and DTLS client transports,
// TCP allocations (RFC 6062), the ALPN identifier "stun.turn" (RFC 7443) so
// that the one-port TLS demultiplexer on 443 can hand connections over, and
// the TURN REST API credential scheme (draft-uberti-behave-turn-rest-00, as
// coturn's use-auth-secret) beside long-term credentials (RFC 8489 §9.2).
//
// The protocol engine is github.com/pion/turn/v5; this package adds what an
// edge exposed to the Internet needs around it: a peer address policy that
// keeps the relay from becoming a door into the LAN (RFC 8656 §21.3) or
// into the node itself (its listeners and relay range are never relayed
// to, see ownAddrs), nonces bound to the client's address (nonceKeeper),
// AEAD-only TLS and DTLS, quotas
// per user and in total, a rate limit on allocation attempts, a relay port
// range of its own, a hard cap on an allocation's age, live allocation
// listing for the API and Prometheus metrics updated while data flows.
//
// The UDP data path does not go through the engine: the listener and relay
// sockets read with recvmmsg and relay ChannelData (RFC 8656 §12) and Send
// and Data indications (§11) themselves, sending with sendmmsg where a
// batch goes to one socket, without allocating and without locks: they
// read copy-on-write snapshots of the allocations, permissions and
// channels that the engine's events publish (fastpath.go). Whatever the
// snapshots do not cover goes to the engine. The sockets also answer two
// requests of every allocation themselves, with their own STUN codec
// (stunmsg.go, RFC 8489 §5 and §14): the first Allocate's 401 challenge
// (screen.go) and a UDP client's Refresh with LIFETIME 0 (release.go).
package turn
