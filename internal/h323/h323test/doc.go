// Package h323test holds test support for H.323: reading the reference
// captures in ../shared/ref/captures through tshark (captures.go, streams.go),
// writing classic libpcap files for tshark to dissect (pcap.go), and
// stand-ins for the H.323 products no Debian package provides, built on
// Portico's own codecs (asn1per, h225, h245, q931, ras):
//
//   - Endpoint, a simulated endpoint (registration with or without
//     H.460.18, keep-alives, SCI → SCR → Facility, calls with fastStart or
//     H.245 tunnelled or separate, audio, video and H.239 content channels,
//     RTP sent, counted and echoed, DRQ and ReleaseComplete; optionally
//     H.460.19: keep-alives to the keepAliveChannel it is given and
//     multiplexed media, as h323plus does, with its media sockets behind
//     a wrapper a test may use as a NAT);
//   - Gatekeeper, a minimal inside gatekeeper (RAS and routed call
//     signalling, scripted callees, every received message recorded);
//   - Recorder and Dissect, which write what those components send into
//     a pcap and have tshark dissect it (fields and malformed packets).
//
// A typical end-to-end test:
//
//	rec := h323test.NewRecorder(t)
//	gk := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{Recorder: rec})
//	a := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "1001", Gatekeeper: gk.RASAddr(), H46018: true, Recorder: rec})
//	b := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(), Recorder: rec})
//	a.Register(ctx); b.Register(ctx)
//	call, err := a.Call(ctx, "2001", h323test.CallOptions{FastStart: true})
//	in, err := b.Incoming(ctx)
//	call.WaitMedia(ctx); in.WaitMedia(ctx)
//	call.SendRTP(10); in.WaitReceived(ctx, 10)
//	call.Hangup()
//	h323test.NoMalformed(t, rec.Dissect(t))
//
// Point Gatekeeper (the endpoint's) at Portico's RAS address instead of
// gk.RASAddr() to put Portico in between. Every component binds
// 127.0.0.1 (or the IP its config names) on system-chosen ports and is
// closed when the test ends.
package h323test
