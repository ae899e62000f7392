package h323proxy

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// TestCapturedRegistrationsRelayed replays the RRQs of real endpoints
// (H323Plus, ooh323c and others in the reference captures, read at run
// time and not copied) through Portico, and answers them with the real
// gatekeepers' RCFs (GnuGk's among them) from the same captures: the
// inside gets Portico's addresses, and the RCF sent outside carries none
// of the captured gatekeeper's addresses or identifiers.
func TestCapturedRegistrationsRelayed(t *testing.T) {
	ref := capture.RefDir()
	if ref == "" {
		t.Skip("../shared/ref beside the repository is absent: no reference captures")
	}
	files, _ := filepath.Glob(filepath.Join(ref, "captures", "gnugk", "*.pcapng"))
	files = append(files, filepath.Join(ref, "captures", "ooh323c", "g1.pcapng"), filepath.Join(ref, "captures", "ndpi-h323.pcap"))
	var relayed int
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			rrqs := capture.Frames(t, file, "h225.RasMessage == 3")
			rcfs := capture.Frames(t, file, "h225.RasMessage == 4")
			h := newHarness(t, nil)
			next := 0
			for _, f := range rrqs {
				m, err := ras.Parse(f.Payload)
				if err != nil || f.Malformed {
					continue
				}
				req := m.RegistrationRequest
				h.ep.send(h.ext, m)
				if req.HasKeepAlive && req.KeepAlive {
					// Portico never gave this identifier out.
					_, out := h.ep.expect(h225.RasMessage_RegistrationReject)
					if out.RegistrationReject.RejectReason.Choice != h225.RegistrationRejectReason_FullRegistrationRequired {
						t.Errorf("frame %d: keep-alive of an unknown endpoint: reason %d", f.Num, out.RegistrationReject.RejectReason.Choice)
					}
					continue
				}
				from, in := h.gk.expect(h225.RasMessage_RegistrationRequest)
				if got := ap(t, &in.RegistrationRequest.CallSignalAddress[0]); got != insideSignal {
					t.Errorf("frame %d: inside RRQ callSignalAddress %v", f.Num, got)
				}
				if next >= len(rcfs) {
					continue
				}
				rm, err := ras.Parse(rcfs[next].Payload)
				next++
				if err != nil {
					continue
				}
				rcf := rm.RegistrationConfirm
				rcf.RequestSeqNum = in.RegistrationRequest.RequestSeqNum
				h.gk.send(from, rm)
				_, out := h.ep.expect(h225.RasMessage_RegistrationConfirm)
				b, _ := out.Marshal()
				for i := range rcf.CallSignalAddress {
					if a, err := ras.AddrPort(&rcf.CallSignalAddress[i]); err == nil {
						ip := a.Addr().AsSlice()
						if bytes.Contains(b, ip) {
							t.Errorf("frame %d: the gatekeeper's address %s crossed", f.Num, a.Addr())
						}
					}
				}
				if id := bmp(rcf.EndpointIdentifier); id != "" && bmp(out.RegistrationConfirm.EndpointIdentifier) == id {
					t.Errorf("frame %d: the gatekeeper's endpointIdentifier %q crossed", f.Num, id)
				}
				if g := bmp(rcf.GatekeeperIdentifier); g != "" && bmp(out.RegistrationConfirm.GatekeeperIdentifier) == g {
					t.Errorf("frame %d: the gatekeeper's identifier %q crossed", f.Num, g)
				}
				relayed++
			}
		})
	}
	if relayed == 0 {
		t.Error("no captured registration was relayed")
	}
}
