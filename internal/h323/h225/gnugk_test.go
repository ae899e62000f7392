package h225

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/q931"
)

// gnugkCaptures lists the GnuGk captures (H.460.18/19, a proxying
// gatekeeper, h323plus and ooh323c endpoints), or skips.
func gnugkCaptures(t testing.TB) []string {
	ref := capture.RefDir()
	if ref == "" {
		t.Skip("../shared/ref beside the repository is absent (set PORTICO_REF_DIR): no reference captures")
	}
	var out []string
	for _, f := range []string{"gk-h323plus.pcapng", "gk-h323plus-notunnel.pcapng", "gk-ooh323c.pcapng"} {
		out = append(out, filepath.Join(ref, "captures", "gnugk", f))
	}
	return out
}

// TestGnuGkRoundTrip requires every RAS message and every
// H323-UserInformation of the GnuGk captures to decode and re-encode to
// the captured bytes (the SCI/SCR of H.460.18, feature sets, keep-alive
// RRQs, call signalling through the proxy).
func TestGnuGkRoundTrip(t *testing.T) {
	var ras, uuie int
	for _, file := range gnugkCaptures(t) {
		base := filepath.Base(file)
		for _, fr := range capture.Frames(t, file, "h225 && udp") {
			var m RasMessage
			if err := m.Unmarshal(fr.Payload); err != nil {
				t.Errorf("%s/%d: RAS decode: %v", base, fr.Num, err)
				continue
			}
			if out, err := m.Marshal(); err != nil || !bytes.Equal(out, fr.Payload) {
				t.Errorf("%s/%d: RAS round trip: %v\n got % x\nwant % x", base, fr.Num, err, out, fr.Payload)
				continue
			}
			ras++
		}
		for _, p := range capture.TPKTPackets(t, file, "q931 && tcp.len>0 && !tcp.analysis.retransmission") {
			if p.Partial || p.Malformed {
				continue
			}
			m, err := q931.Parse(p.Payload)
			if err != nil {
				t.Errorf("%s/%d: q931: %v", base, p.Frame, err)
				continue
			}
			uu, err := m.UserUser()
			if err != nil {
				continue
			}
			var ui H323UserInformation
			if err := ui.Unmarshal(uu); err != nil {
				t.Errorf("%s/%d: UUIE decode: %v", base, p.Frame, err)
				continue
			}
			if out, err := ui.Marshal(); err != nil || !bytes.Equal(out, uu) {
				t.Errorf("%s/%d: UUIE round trip: %v", base, p.Frame, err)
				continue
			}
			uuie++
		}
	}
	if ras < 20 || uuie < 10 {
		t.Fatalf("only %d RAS and %d UUIE messages round-tripped", ras, uuie)
	}
	t.Logf("%d RAS and %d H323-UserInformation messages round-tripped", ras, uuie)
}
