package media_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/portico-edge/portico/internal/media"
)

// Example shows how a signalling service anchors a call: allocate from the
// offer, update from the answer, release at hang-up.
func Example() {
	relay, err := media.New(media.Config{
		Interfaces: map[string]media.InterfaceConfig{
			"external": {Addr: netip.MustParseAddr("127.0.0.1"), PortMin: 46000, PortMax: 46099},
			"internal": {Addr: netip.MustParseAddr("127.0.0.1"), PortMin: 46100, PortMax: 46199},
		},
		Latching: media.LatchNAT,
	}, media.Deps{
		Logger:    slog.Default(),
		OnTimeout: func(t media.Timeout) { fmt.Println("media stopped on", t.Label) },
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go relay.Run(ctx)

	// Offer from the outside caller: its audio and video addresses.
	caller := netip.MustParseAddrPort("127.0.0.1:5004")
	id, streams, err := relay.Allocate(media.SessionConfig{
		Label:      "call-id@example",
		Interfaces: [2]string{"external", "internal"},
		Streams: []media.StreamConfig{
			{Kind: media.KindAudio, Remote: [2]netip.AddrPort{caller}},
			{Kind: media.KindBFCP, Transport: media.TCP, Role: [2]media.TCPRole{media.TCPPassive, media.TCPPassive}},
		},
	})
	if err != nil {
		panic(err)
	}
	// streams[i].Local[1] goes into the SDP offered to the inside callee.
	fmt.Println(streams[0].Local[1].Port()%2 == 0)

	// Answer from the inside callee.
	callee := netip.MustParseAddrPort("127.0.0.1:6004")
	if _, err := relay.Update(id, []media.StreamConfig{
		{Kind: media.KindAudio, Remote: [2]netip.AddrPort{caller, callee}},
		{Kind: media.KindBFCP, Transport: media.TCP, Role: [2]media.TCPRole{media.TCPPassive, media.TCPPassive}},
	}); err != nil {
		panic(err)
	}
	// streams[i].Local[0] goes into the SDP answered to the caller.

	stats, _ := relay.Release(id) // for call history
	fmt.Println(len(stats.Streams))
	// Output:
	// true
	// 2
}
