package h245_test

import (
	"bytes"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
)

// FuzzMultimediaSystemControlMessage requires that anything that decodes
// encodes, and that the encoding decodes and re-encodes to itself.
func FuzzMultimediaSystemControlMessage(f *testing.F) {
	f.Add([]byte{0x00})
	// The reference captures in ../shared/ref, when present, seed the
	// target; they are read where they lie, never copied in.
	if capture.RefDir() != "" {
		seen := map[string]bool{}
		for _, v := range vectors(f) {
			if !v.olc && !v.bad && !seen[string(v.payload)] {
				seen[string(v.payload)] = true
				f.Add(v.payload)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m h245.MultimediaSystemControlMessage
		if err := m.Unmarshal(b); err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("decoded value does not encode: %v", err)
		}
		var m2 h245.MultimediaSystemControlMessage
		if err := m2.Unmarshal(out); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		out2, err := m2.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("encoding not stable: %v\n% x\n% x", err, out, out2)
		}
	})
}
