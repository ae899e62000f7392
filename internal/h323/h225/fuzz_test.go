package h225

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/h323/q931"
)

// codec is what the fuzz targets need of a top-level PDU.
type codec interface {
	Unmarshal([]byte) error
	Marshal() ([]byte, error)
}

// checkStable decodes b into fresh values from newV; anything that decodes
// must encode, and the encoding must decode and re-encode to itself.
func checkStable(t *testing.T, b []byte, newV func() codec) {
	v := newV()
	if err := v.Unmarshal(b); err != nil {
		return
	}
	out, err := v.Marshal()
	if err != nil {
		t.Fatalf("decoded value does not encode: %v", err)
	}
	w := newV()
	if err := w.Unmarshal(out); err != nil {
		t.Fatalf("re-encoding does not decode: %v\n% x", err, out)
	}
	out2, err := w.Marshal()
	if err != nil || !bytes.Equal(out, out2) {
		t.Fatalf("encoding not stable: %v\n% x\n% x", err, out, out2)
	}
}

func FuzzRasMessage(f *testing.F) {
	f.Add([]byte{0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStable(t, b, func() codec { return new(RasMessage) })
	})
}

func FuzzH323UserInformation(f *testing.F) {
	f.Add([]byte{0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStable(t, b, func() codec { return new(H323UserInformation) })
	})
}

// TestWriteFuzzSeeds refreshes testdata/fuzz from the reference captures
// when H323_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("H323_WRITE_SEEDS") != "1" {
		t.Skip("set H323_WRITE_SEEDS=1 to rewrite testdata/fuzz from the captures")
	}
	write := func(target string, i int, b []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("capture-%03d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n, u := 0, 0
	for _, file := range h323test.Captures(t) {
		for _, fr := range h323test.Frames(t, file, "udp.port==1719") {
			write("FuzzRasMessage", n, fr.Payload)
			n++
		}
		for _, p := range h323test.TPKTPackets(t, file, SignallingFilter) {
			m, err := q931.Parse(p.Payload)
			if err != nil {
				continue
			}
			if uu, err := m.UserUser(); err == nil {
				write("FuzzH323UserInformation", u, uu)
				u++
			}
		}
	}
}
