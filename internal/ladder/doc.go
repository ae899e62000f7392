// Package ladder keeps the signalling of recent calls and draws it: every
// SIP message of both dialogs of a B2BUA call as it crossed Portico's
// sockets (direction, interface, transport, local and remote address,
// time), in one bounded in-memory Store keyed by the call's ID (the ID of
// GET /api/v1/calls and of call history).
//
// Capture happens at the transport boundary: WrapPacketConn and
// WrapListener wrap the SIP edge's sockets and hand every datagram, and
// every message framed out of an accepted TCP or TLS stream (RFC 3261
// section 18.3, after TLS) or WebSocket connection (RFC 7118, RFC 6455
// section 5.2), to Store.Observe. Connections the SIP stack dials itself
// are not wrapped. A message is kept only when its Call-ID belongs to a call
// (linked by the SIP edge with Store.Link) or starts one (an INVITE without
// a To tag); everything else (REGISTER, OPTIONS) costs one header scan. A
// message is masked before it is stored or traced (Mask): the digest
// response, nonce and cnonce of Authorization, Proxy-Authorization and
// Authentication-Info, whole credentials of other schemes, and the keys of
// SDP a=crypto (RFC 4568 inline) and a=key-mgmt (RFC 4567) lines are
// overwritten byte for byte, so Content-Length stays true.
//
// Bounds (Config): the number of calls, the bytes kept per call (later
// messages are dropped and the call is marked truncated), the bytes kept
// in all, and the number of dialogs waiting to be linked; the oldest call
// is evicted first.
//
// A call's Ladder places every message between four parties: the outside
// party, Portico's outside interface, Portico's inside interface and the
// inside party. SVG renders it as a message sequence chart and Pcap as a
// synthesised capture (LINKTYPE_RAW, IPv4 or IPv6 with UDP or TCP headers
// and true checksums) that Wireshark dissects as SIP.
//
// H.323 uses the same record: the call-signalling proxy
// (internal/h323proxy/callsig) links a call's H.225.0 CallIdentifier to
// its history ID and adds each Q.931 message either leg carries with
// Protocol "q931", its type (and called number, cause) as Summary and a
// text decoding as Text, never the bytes, so H.235 tokens stay out. RAS
// and separate H.245 connections could be added the same way (Protocol
// "ras", "h245"); the pcap carries SIP only.
//
// Store.Subscribe feeds a live trace of every observed message (not only
// calls), masked the same way, to a bounded channel per subscriber.
package ladder
