package h225

import (
	"bytes"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h323test/capture"
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
	addCaptureSeeds(f, true)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStable(t, b, func() codec { return new(RasMessage) })
	})
}

func FuzzH323UserInformation(f *testing.F) {
	f.Add([]byte{0x00})
	addCaptureSeeds(f, false)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStable(t, b, func() codec { return new(H323UserInformation) })
	})
}

// addCaptureSeeds seeds a fuzz target with the payloads of the reference
// captures in ../shared/ref when that directory is present. The captures
// are read where they lie, never copied into the repository.
func addCaptureSeeds(f *testing.F, ras bool) {
	if capture.RefDir() == "" {
		return
	}
	for _, file := range capture.Captures(f) {
		if ras {
			for _, fr := range capture.Frames(f, file, "udp.port==1719") {
				f.Add(fr.Payload)
			}
			continue
		}
		for _, p := range capture.TPKTPackets(f, file, SignallingFilter) {
			m, err := q931.Parse(p.Payload)
			if err != nil {
				continue
			}
			if uu, err := m.UserUser(); err == nil {
				f.Add(uu)
			}
		}
	}
}
