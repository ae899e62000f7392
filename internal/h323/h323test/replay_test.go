package h323test

import (
	"bytes"
	"net"
	"path/filepath"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// refCapture returns the path of a reference capture, skipping the test
// when the reference directory is absent.
func refCapture(t *testing.T, name string) string {
	t.Helper()
	ref := capture.RefDir()
	if ref == "" {
		t.Skip("../shared/ref beside the repository is absent: no reference captures")
	}
	return filepath.Join(ref, "captures", name)
}

// TestGatekeeperAcceptsCapturedRRQs replays real products' RRQs (a
// Tandberg endpoint's keep-alive RRQs with H.460.18 to a Cisco VCS, and
// h323plus's H.460.18 registrations to GnuGk) to the minimal gatekeeper:
// each must be confirmed.
func TestGatekeeperAcceptsCapturedRRQs(t *testing.T) {
	for _, tc := range []struct {
		name, file, filter string
		h46018             bool
	}{
		// frames 71-75: the Tandberg's keep-alive RRQs (61 is another endpoint)
		{"tandberg", "ndpi-h323.pcap", " && frame.number >= 71", true},
		{"h323plus", "gnugk/gk-h323plus.pcapng", "", true},
		{"ooh323c", "ooh323c/g1.pcapng", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := refCapture(t, tc.file)
			frames := capture.Frames(t, file, "h225.RasMessage == 3 && !_ws.malformed"+tc.filter)
			if len(frames) == 0 {
				t.Fatal("no RRQ in the capture")
			}
			gk := NewGatekeeper(t, GatekeeperConfig{})
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(gk.RASAddr()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 2048)
			for _, f := range frames {
				req, err := ras.Parse(f.Payload)
				if err != nil {
					t.Fatalf("frame %d: %v", f.Num, err)
				}
				if _, err := c.Write(f.Payload); err != nil {
					t.Fatal(err)
				}
				n, err := c.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := ras.Parse(buf[:n])
				if err != nil {
					t.Fatalf("frame %d: answer: %v", f.Num, err)
				}
				if resp.Choice != h225.RasMessage_RegistrationConfirm || !ras.Matches(req, resp) {
					reason := -1
					if resp.RegistrationReject != nil {
						reason = resp.RegistrationReject.RejectReason.Choice
					}
					t.Errorf("frame %d: answered %s (reason %d), want a matching RCF", f.Num, ras.Name(resp), reason)
				}
			}
			regs := gk.Registrations()
			if len(regs) == 0 {
				t.Fatal("nothing registered")
			}
			for _, r := range regs {
				if r.H46018 != tc.h46018 {
					t.Errorf("registration %v: H.460.18 %v, want %v", r.Aliases, r.H46018, tc.h46018)
				}
			}
		})
	}
}

// TestEndpointAnswersCapturedSCI sends the endpoint GnuGk's SCI from the
// reference capture (its IncomingCallIndication pointed at our
// gatekeeper's call-signalling address, the callID kept) and checks the
// simulator does what the h323plus endpoint did there: SCR with the same
// sequence number, a TCP connection to the indicated address, a Facility
// (undefinedReason) carrying that callID, then it answers the Setup on
// that connection.
func TestEndpointAnswersCapturedSCI(t *testing.T) {
	file := refCapture(t, "gnugk/gk-h323plus.pcapng")
	scis := capture.Frames(t, file, "h225.RasMessage == 30")
	if len(scis) == 0 {
		t.Fatal("no SCI in the capture")
	}
	sci, err := ras.Parse(scis[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := ras.FindIncomingCall(sci)
	if err != nil {
		t.Fatal(err)
	}
	facilities := capture.TPKTPackets(t, file, "q931.message_type == 0x62 && !tcp.analysis.retransmission")
	if len(facilities) == 0 {
		t.Fatal("no Facility in the capture")
	}
	captured, err := parseQ931(facilities[0].Payload, ic.CallSignal, ic.CallSignal)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	gk := NewGatekeeper(t, GatekeeperConfig{})
	ep := NewEndpoint(t, EndpointConfig{Alias: "ep2", Gatekeeper: gk.RASAddr(), H46018: true})
	if err := ep.Register(ctx); err != nil {
		t.Fatal(err)
	}
	// the captured SCI with the indicated address moved to our gatekeeper
	feat, err := ras.IncomingCall(ras.IncomingCallIndication{CallSignal: gk.CallSignalAddr(), CallID: ic.CallID})
	if err != nil {
		t.Fatal(err)
	}
	sci.ServiceControlIndication.GenericData = []h225.GenericData{feat}
	reg, _ := gk.Registered("ep2")
	gk.waitFacility(t, ic.CallID, func() { gk.send(sci, reg.Source) })
	if err := gk.WaitFor(ctx, "SCR", 1); err != nil {
		t.Fatal(err)
	}
	scr := Find(gk.Received(), "SCR")[0].RAS
	if !ras.Matches(sci, scr) {
		t.Errorf("SCR does not answer the SCI: %+v", scr.ServiceControlResponse)
	}
	fac := Find(gk.Received(), "Facility")
	if len(fac) != 1 {
		t.Fatalf("%d Facility, want 1", len(fac))
	}
	got, want := fac[0].UUIE.H323UuPdu.H323MessageBody.Facility, captured.UUIE.H323UuPdu.H323MessageBody.Facility
	if got.Reason.Choice != want.Reason.Choice || !bytes.Equal(got.CallIdentifier.Guid, want.CallIdentifier.Guid) {
		t.Errorf("Facility reason %d callID %x, h323plus sent reason %d callID %x",
			got.Reason.Choice, got.CallIdentifier.Guid, want.Reason.Choice, want.CallIdentifier.Guid)
	}
}
