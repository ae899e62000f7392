// Package h460 decodes and encodes the H.245 parts of ITU-T H.460.18
// (signalling traversal for H.323 through NAT and firewalls) and H.460.19
// (media traversal).
//
// TraversalParameters is the H.460.19 (MEDIA-TRAVERSAL) SEQUENCE carried in
// the genericInformation of OpenLogicalChannel and OpenLogicalChannelAck
// under OID 0.0.8.460.19.0.1, parameter 1, as an OCTET STRING holding its
// ALIGNED PER encoding: the multiplexed media and media control addresses,
// the multiplexID, and the keep-alive channel, payload type and interval.
// Indication is the H.460.18 H.245 genericIndication (OID
// 0.0.8.460.18.0.1) an endpoint sends first on an H.245 connection it
// opened towards the traversal server, naming the call.
//
// The codec is pure: it imports only the standard library, asn1per and
// h245.
package h460
