// Package h323proxy is Portico's H.323 edge service: a RAS gatekeeper
// proxy between outside endpoints and the inside gatekeeper (ITU-T
// H.225.0 (12/2009) §7 and §8), and an H.460.18 traversal server
// (ITU-T H.460.18 (11/2005) §7 and §8) for endpoints behind NAT, which
// also confirms H.460.19 media traversal to those that offer it (the
// call's media adapter, package h245proxy, is then their media traversal
// server).
//
// Outside endpoints discover and register with Portico; Portico registers
// them with the inside gatekeeper in its own name: the RRQ the inside sees
// carries Portico's internal call-signalling and RAS addresses, and every
// message sent outside is built afresh from an allow-list of fields, so no
// inside address, gatekeeper identifier or endpoint identifier crosses
// (endpointIdentifier and gatekeeperIdentifier are mapped between the
// sides). Lightweight keep-alive RRQs are answered by Portico, which keeps
// the inside registration refreshed itself within the inside's
// timeToLive; a registration the inside rejects is never kept.
//
// The registration table (registrations.go) is the Registry the call
// signalling proxy (package callsig) looks outside endpoints up in; the
// traversal server (traversal.go) is its Traversal: an SCI with an
// IncomingCallIndication asks an H.460.18 endpoint to open the call
// signalling connection, which the Facility carrying the call's
// identifier binds to the waiting call. During a call with such an
// endpoint Portico keeps its TCP connections alive with the method its
// vendor takes (keepalive.go).
//
// A traversal zone (zone.go) makes Portico an H.460.18 traversal client
// of another edge: it registers to that traversal server, answers its
// SCIs by connecting out and takes the Setup that follows as a call from
// outside, and admits calls to the zone's aliases there by ARQ.
//
// Lock discipline: Server.mu guards the registration table, the pending
// transactions of both sides and the traversal waiters; it is never held
// while waiting on anything but a UDP write.
package h323proxy
