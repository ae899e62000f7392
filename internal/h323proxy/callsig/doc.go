// Package callsig proxies H.323 call signalling across the edge: Q.931
// messages (ITU-T Q.931 as profiled by H.225.0 (12/2009) §7) in TPKT
// frames over TCP, from an outside endpoint to the inside gatekeeper or
// endpoint and from the inside to registered outside endpoints (H.460.18
// ones through the traversal server).
//
// Portico keeps the call reference and call identifier and forwards every
// message (Setup, CallProceeding, Alerting, Progress, Connect, Facility,
// Notify, Information, ReleaseComplete and the rest) after rewriting the
// transport addresses of its H323-UserInformation (H.225.0 §7.6):
// sourceCallSignalAddress, destCallSignalAddress, alternativeAddress and
// h245Address name Portico on the receiving side, so no inside address
// reaches the outside. The media addresses of fastStart elements and of
// tunnelled H.245 (h245Tunnelling, h245Control) go through package
// h245proxy, which also bridges separate H.245 connections: for every
// h245Address an endpoint announces, Portico listens on the other side
// (on a port of that side's H245Ports range, when set) and connects to
// the announced address when the far end connects (toward an inside
// endpoint through Deps.DialH245, when set: a tunnel dial service). An
// outside endpoint behind NAT (H.460.18) is never connected to: for its
// h245Address Portico listens outside too and asks it to connect with a
// Facility startH245, and its connections carry keep-alives (an empty
// TPKT or Facility) at the interval the edge gives.
//
// Every frame is read with a size cap and a deadline (the first message
// within SetupTimeout, the answer within AnswerTimeout; TCP keep-alives
// end half-open connections after the answer). A message that does not
// decode is answered with ReleaseComplete (cause 95, invalid message)
// and ends only its own call. Calls beyond MaxCalls and guests the
// policy refuses are answered with ReleaseComplete as well, with causes
// 47 (resource unavailable) and 21 (call rejected); each call ends in a
// history record whose disposition names the Q.931 cause in words.
//
// For an HA pair (ha.go), answered calls are exported as they are
// answered and end (Deps.OnCall, ExportCall), and the peer's are kept
// without signalling (ImportCall): the TCP connections of a call end with
// the node that held them, so once a call's addresses come to this node
// its media is relayed by the relay's copy of its session and its one
// history row is written here when that media stops.
package callsig
