package h225

import (
	"errors"
	"testing"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/q931"
)

// TestTruncatedSaysTruncated cuts every captured RAS message and
// H323-UserInformation at every length: a prefix of a valid encoding is
// decoded along the same path until the input runs out, so the error must
// be asn1per.ErrTruncated (before, a cut inside an integer length read as
// an unsupported "32-octet integer").
func TestTruncatedSaysTruncated(t *testing.T) {
	var msgs [][]byte
	kinds := map[int]bool{} // index -> RAS
	files := append(capture.Captures(t), gnugkCaptures(t)...)
	for _, file := range files {
		for _, fr := range capture.Frames(t, file, "h225 && udp") {
			if !fr.Malformed {
				kinds[len(msgs)] = true
				msgs = append(msgs, fr.Payload)
			}
		}
		for _, p := range capture.TPKTPackets(t, file, "q931 && tcp.len>0 && !tcp.analysis.retransmission") {
			if p.Partial || p.Malformed {
				continue
			}
			if m, err := q931.Parse(p.Payload); err == nil {
				if uu, err := m.UserUser(); err == nil {
					msgs = append(msgs, uu)
				}
			}
		}
	}
	cuts := 0
	for i, b := range msgs {
		for n := 0; n < len(b); n++ {
			var err error
			if kinds[i] {
				var m RasMessage
				err = m.Unmarshal(b[:n])
			} else {
				var m H323UserInformation
				err = m.Unmarshal(b[:n])
			}
			if !errors.Is(err, asn1per.ErrTruncated) {
				t.Fatalf("message %d (% x) cut at %d of %d: %v, want truncated", i, b, n, len(b), err)
			}
			cuts++
		}
	}
	t.Logf("%d cuts of %d messages", cuts, len(msgs))
}
