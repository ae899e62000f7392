// Package h245proxy rewrites the media addresses of ITU-T H.245 (12/2009)
// logical channels to the media relay's and carries separate H.245
// control connections (H.245 §6 over TCP with TPKT framing, H.225.0
// §7.2.2, §8.2.1) across the edge.
//
// Only what must change is touched: OpenLogicalChannel (H.245 §7.3.1,
// H2250LogicalChannelParameters mediaChannel and mediaControlChannel, in
// the forward and reverse parameters, fastStart or not) and
// OpenLogicalChannelAck (H2250LogicalChannelAckParameters, H.245
// §7.3.2) are decoded and re-encoded with relay addresses; every other
// PDU (capability exchange, master/slave determination, flow control,
// UserInputIndication, H.239 generic messages, H.235 media keys) passes
// byte for byte.
//
// H.460.19 traversal parameters (genericInformation 0.0.8.460.19.0.1)
// never cross: for an outside endpoint that offered H.460.19 the Session
// is its media traversal server and puts its own into every
// OpenLogicalChannel and OpenLogicalChannelAck sent to it: the relay's
// outside RTP address as keepAliveChannel, keepAlivePayloadType and
// keepAliveInterval. To one that can transmit multiplexed media it also
// offers the relay's multiplexed ports and the stream's multiplexID, and
// one that names its own multiplexID receives its media so prefixed.
//
// A Bridge carries one separate H.245 connection; its listeners bind in
// a configured range of ports (Ports), and its connection to the announced
// address may go through a caller-supplied Dial (a tunnel dial service).
//
// A Session is the media adapter of one call over a media.Relay: leg 0 of
// every relay stream is the outside, leg 1 the inside. One relay stream
// carries one RTP session (H.225.0 §8.1 sessionID: 1 audio, 2 video,
// 3 data, dynamic ones such as H.239 content), both directions of it, so
// symmetric endpoints send and receive on the ports they announced.
package h245proxy
