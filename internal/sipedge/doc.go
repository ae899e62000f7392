// Package sipedge is Portico's SIP edge: the registration proxy and the
// back-to-back user agent (B2BUA) that stand between outside SIP endpoints
// and the inside call server.
//
// It implements:
//   - listeners per interface ("external", "internal") and transport: UDP,
//     TCP, TLS, WS and WSS (RFC 3261 section 18, RFC 7118);
//   - a list of inside call servers chosen by priority and weight, probed by
//     OPTIONS and failed over (RFC 3263 section 4.3 style ordering); the Route
//     header of every request names the server actually chosen;
//   - the registration proxy: REGISTER is relayed inside with a Path header
//     (RFC 3327) that carries a flow token (RFC 5626 section 5.2) naming the
//     NAT flow (transport, source address, connection) the endpoint used, so
//     calls to it come back through the same flow; CRLF keepalives (RFC 5626
//     section 3.5.1) are answered; expiry is shortened for NAT; digest
//     authentication passes end to end; a registration the inside rejects is
//     never kept;
//   - the B2BUA: every call is two dialogs (RFC 3261 section 12) with
//     separate Call-IDs, tags, Via and Contact, so nothing that names a host
//     on one side is sent to the other (topology hiding); SDP is rewritten to
//     the media relay's addresses (RFC 3264 offer/answer, package sdp);
//     re-INVITE and UPDATE (RFC 3311), reliable provisionals (RFC 3262,
//     acknowledged per leg), CANCEL, BYE from either side, INFO; REFER is
//     refused;
//   - call policy for guests (VMR number ranges, aliases, default
//     destination) and federation (domain allow list, open B2B, outbound by
//     RFC 3263 NAPTR/SRV/A);
//   - capacity limits answered with 503 and Retry-After (RFC 3261 section
//     21.5.4), call and registration history.
//
// Parsing, transactions and transports come from github.com/emiago/sipgo;
// dialogs and the B2BUA are this package's own. The B2BUA is in files by
// job: calls.go (the call, its legs and the call table), routing.go (which
// calls are allowed and where they go), invite.go (the INVITE state machine:
// ringing, provisionals, answer, ACK), indialog.go (re-INVITE and other
// in-dialog requests relayed between the legs) and teardown.go (BYE,
// CANCEL, hang-ups and the history record of a call's end).
package sipedge
