package h225

import (
	"bytes"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h323test/capture"
)

// TestRASRoundTrip decodes every RAS message of the reference captures and
// requires the re-encoding to reproduce the captured bytes exactly.
// Frames tshark itself reports as malformed (truncated) must fail to decode.
func TestRASRoundTrip(t *testing.T) {
	total := 0
	for _, file := range capture.Captures(t) {
		for _, fr := range capture.Frames(t, file, "udp.port==1719") {
			t.Run(fr.File+"/"+itoa(fr.Num), func(t *testing.T) {
				var m RasMessage
				err := m.Unmarshal(fr.Payload)
				if fr.Malformed {
					if err == nil {
						t.Fatalf("truncated frame decoded without error")
					}
					return
				}
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				out, err := m.Marshal()
				if err != nil {
					t.Fatalf("encode: %v", err)
				}
				if !bytes.Equal(out, fr.Payload) {
					t.Fatalf("round trip differs\n got % x\nwant % x", out, fr.Payload)
				}
				total++
			})
		}
	}
	if total == 0 {
		t.Fatal("no RAS messages found in the captures")
	}
	t.Logf("%d RAS messages round-tripped", total)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
