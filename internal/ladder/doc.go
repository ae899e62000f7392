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
// H.323 fits the same record: a Message carries Protocol ("sip" today;
// "ras", "q931" and "h245" for H.323) and a text Summary and Text. The
// H.323 proxy would link the call's H.225 CallIdentifier (as the dialog
// key) to the call's ID with Store.Link, decode each RAS, Q.931 or H.245
// PDU it sends or receives into a one-line summary (the message type and
// key fields, as "Setup 1001", "OpenLogicalChannel 2") and a multi-line
// text dump, and add it with Store.Add under that key, with its interface
// and addresses. The API and the SVG need no change; the pcap would carry
// the PDU bytes (a field beside Text) on the H.323 ports so that
// Wireshark's H.225 and H.245 dissectors apply.
//
// Store.Subscribe feeds a live trace of every observed message (not only
// calls), masked the same way, to a bounded channel per subscriber.
package ladder
