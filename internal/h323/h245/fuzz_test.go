package h245_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h245"
)

// FuzzMultimediaSystemControlMessage requires that anything that decodes
// encodes, and that the encoding decodes and re-encodes to itself.
func FuzzMultimediaSystemControlMessage(f *testing.F) {
	f.Add([]byte{0x00})
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

// TestWriteFuzzSeeds refreshes testdata/fuzz from the reference captures
// when H323_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("H323_WRITE_SEEDS") != "1" {
		t.Skip("set H323_WRITE_SEEDS=1 to rewrite testdata/fuzz from the captures")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzMultimediaSystemControlMessage")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	i := 0
	for _, v := range vectors(t) {
		if v.olc || v.bad || seen[string(v.payload)] {
			continue
		}
		seen[string(v.payload)] = true
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", v.payload)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("capture-%03d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		i++
	}
}
