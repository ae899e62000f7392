package h225

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/q931"
)

// SignallingFilter selects call-signalling segments, without TCP
// retransmissions and keep-alives.
const SignallingFilter = "tcp.port==1720 && tcp.len>0 && !tcp.analysis.retransmission && !tcp.analysis.keep_alive"

// TestUUIERoundTrip parses every Q.931 message of the captures, requires
// the Q.931 encoding to round-trip, and decodes and re-encodes the
// H323-UserInformation of each user-user IE.
func TestUUIERoundTrip(t *testing.T) {
	total := 0
	for _, file := range capture.Captures(t) {
		for _, p := range capture.TPKTPackets(t, file, SignallingFilter) {
			t.Run(filepath.Base(file)+"/"+itoa(p.Frame), func(t *testing.T) {
				m, err := q931.Parse(p.Payload)
				if p.Partial || p.Malformed {
					if err == nil {
						if uu, err := m.UserUser(); err == nil {
							var ui H323UserInformation
							if ui.Unmarshal(uu) == nil {
								t.Fatalf("truncated message decoded")
							}
						}
					}
					return
				}
				if err != nil {
					t.Fatalf("q931: %v", err)
				}
				out, err := m.Append(nil)
				if err != nil || !bytes.Equal(out, p.Payload) {
					t.Fatalf("q931 round trip: %v\n got % x\nwant % x", err, out, p.Payload)
				}
				uu, err := m.UserUser()
				if err != nil {
					t.Fatalf("user-user: %v", err)
				}
				var ui H323UserInformation
				if err := ui.Unmarshal(uu); err != nil {
					t.Fatalf("decode UUIE: %v", err)
				}
				enc, err := ui.Marshal()
				if err != nil {
					t.Fatalf("encode UUIE: %v", err)
				}
				if !bytes.Equal(enc, uu) {
					t.Fatalf("UUIE round trip differs\n got % x\nwant % x", enc, uu)
				}
				total++
			})
		}
	}
	if total < 20 {
		t.Fatalf("only %d H323-UserInformation messages round-tripped", total)
	}
	t.Logf("%d H323-UserInformation messages round-tripped", total)
}
