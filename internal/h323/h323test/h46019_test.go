package h323test

import (
	"slices"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/h323/ras"
)

// traversalShapes returns, for the OpenLogicalChannel ("olc") and
// OpenLogicalChannelAck ("ack") frames among frames, the sorted H.460.19
// TraversalParameters fields tshark finds in them, each distinct set
// once.
func traversalShapes(frames []Dissected) map[string][]string {
	out := map[string][]string{}
	for _, f := range frames {
		// H.245 RequestMessage 3 is openLogicalChannel, ResponseMessage 5
		// openLogicalChannelAck.
		olc, ack := f.Has("h245.request", "3"), f.Has("h245.response", "5")
		if olc == ack {
			continue
		}
		kind := "olc"
		if ack {
			kind = "ack"
		}
		var names []string
		for name := range f.Fields {
			if strings.HasPrefix(name, "h460.19.") {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		shape := strings.Join(names, " ")
		if !slices.Contains(out[kind], shape) {
			out[kind] = append(out[kind], shape)
		}
	}
	return out
}

// TestH46019LikeGnuGkCapture: the simulated H.460.19 endpoint with
// multiplexing sends what the h323plus endpoints of the GnuGk reference
// capture send: H.460.19 with supportTransmitMultiplexedMedia in the
// Setup, and in its OpenLogicalChannel and OpenLogicalChannelAck the
// traversal parameters of a multiplexing client (its multiplexed media
// and control channels and multiplexID, plus keepAlivePayloadType in the
// OpenLogicalChannelAck), as tshark dissects both. Two such endpoints
// calling each other directly multiplex their RTP both ways.
func TestH46019LikeGnuGkCapture(t *testing.T) {
	want := map[string][]string{}
	for _, name := range []string{"gnugk/gk-h323plus.pcapng", "gnugk/gk-h323plus-notunnel.pcapng"} {
		for k, v := range traversalShapes(Dissect(t, refCapture(t, name), "-Y", "ip.src==127.0.0.1 && h245")) {
			want[k] = append(want[k], v...)
			slices.Sort(want[k])
			want[k] = slices.Compact(want[k])
		}
	}
	t.Logf("h323plus traversal parameters: %q", want)
	if len(want["olc"]) != 1 || len(want["ack"]) != 1 {
		t.Fatalf("the capture's client OLC and OLCAck shapes: %v", want)
	}
	for _, mode := range []H245Mode{Tunnelled, Separate} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t)
			rec := NewRecorder(t)
			cfg := EndpointConfig{H46019: true, H46019Multiplex: true, Recorder: rec}
			cfg.Alias = "1001"
			a := NewEndpoint(t, cfg)
			cfg.Alias = "2001"
			b := NewEndpoint(t, cfg)
			call, err := a.Call(ctx, "2001", CallOptions{H245: mode, Direct: b.CallSignalAddr()})
			if err != nil {
				t.Fatal(err)
			}
			in, err := b.Incoming(ctx)
			if err != nil {
				t.Fatal(err)
			}
			exchangeRTP(t, ctx, 5, call, in)
			for _, c := range []*Call{call, in} {
				for _, st := range c.Media() {
					if st.MultiplexReceived != 5 || st.MultiplexSent != 5 {
						t.Errorf("%v: %d multiplexed packets sent, %d received; want 5 each", st.Kind, st.MultiplexSent, st.MultiplexReceived)
					}
				}
			}
			setups := Find(in.Messages(), "Setup")
			if len(setups) != 1 {
				t.Fatalf("%d Setups", len(setups))
			}
			s := setups[0].UUIE.H323UuPdu.H323MessageBody.Setup
			if f := ras.Generic(s.SupportedFeatures, ras.H46019); f == nil || ras.Param(f, ras.H46019TransmitMultiplexed) == nil {
				t.Errorf("Setup features %+v: want H.460.19 with supportTransmitMultiplexedMedia", s.SupportedFeatures)
			}
			got := traversalShapes(rec.Dissect(t, "-Y", "h245"))
			for _, k := range []string{"olc", "ack"} {
				if !slices.Equal(got[k], want[k]) {
					t.Errorf("%s traversal parameters: simulator %q, capture %q", k, got[k], want[k])
				}
			}
			call.Hangup()
			<-in.Done()
		})
	}
}
