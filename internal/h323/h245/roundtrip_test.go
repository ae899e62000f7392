package h245_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/q931"
)

const signalling = "tcp.port==1720 && tcp.len>0 && !tcp.analysis.retransmission && !tcp.analysis.keep_alive"

// vector is one H.245 encoding found in a capture.
type vector struct {
	name    string
	olc     bool // a fastStart OpenLogicalChannel rather than a message
	payload []byte
	bad     bool
}

// collect walks v for [][]byte fields with the given names.
func collect(v reflect.Value, names map[string]bool, out *[]struct {
	field string
	data  []byte
}) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			collect(v.Elem(), names, out)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if names[f.Name] && f.Type == reflect.TypeOf([][]byte(nil)) {
				for _, b := range v.Field(i).Interface().([][]byte) {
					*out = append(*out, struct {
						field string
						data  []byte
					}{f.Name, b})
				}
				continue
			}
			collect(v.Field(i), names, out)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct || v.Type().Elem().Kind() == reflect.Pointer {
			for i := 0; i < v.Len(); i++ {
				collect(v.Index(i), names, out)
			}
		}
	}
}

func vectors(t testing.TB) []vector { return vectorsOf(t, capture.Captures(t), signalling) }

// vectorsOf collects the H.245 encodings of files: separate H.245
// connections, and the fastStart and tunnelled elements of the call
// signalling that sigFilter selects.
func vectorsOf(t testing.TB, files []string, sigFilter string) []vector {
	var vs []vector
	names := map[string]bool{"FastStart": true, "H245Control": true, "ParallelH245Control": true}
	for _, file := range files {
		base := filepath.Base(file)
		for _, p := range capture.TPKTPackets(t, file, "h245 && !q931 && tcp.len>0 && !tcp.analysis.retransmission") {
			vs = append(vs, vector{name: fmt.Sprintf("%s/%d/tcp", base, p.Frame), payload: p.Payload, bad: p.Partial || p.Malformed})
		}
		for _, p := range capture.TPKTPackets(t, file, sigFilter) {
			if p.Partial || p.Malformed {
				continue
			}
			m, err := q931.Parse(p.Payload)
			if err != nil {
				continue
			}
			uu, err := m.UserUser()
			if err != nil {
				continue
			}
			var ui h225.H323UserInformation
			if err := ui.Unmarshal(uu); err != nil {
				t.Fatalf("%s frame %d: %v", base, p.Frame, err)
			}
			var found []struct {
				field string
				data  []byte
			}
			collect(reflect.ValueOf(&ui), names, &found)
			for i, f := range found {
				vs = append(vs, vector{name: fmt.Sprintf("%s/%d/%s%d", base, p.Frame, f.field, i), olc: f.field == "FastStart", payload: f.data})
			}
		}
	}
	return vs
}

// TestRoundTrip decodes every H.245 message of the captures (separate TCP
// connection, tunnelled in h245Control, fastStart OpenLogicalChannels) and
// requires the re-encoding to reproduce the bytes exactly.
func TestRoundTrip(t *testing.T) { roundTrip(t, vectors(t), 1, 20) }

// TestGnuGkRoundTrip does the same for the GnuGk captures: H.460.18/19
// traversal through a proxying gatekeeper, tunnelled and separate H.245.
func TestGnuGkRoundTrip(t *testing.T) {
	ref := capture.RefDir()
	if ref == "" {
		t.Skip("../shared/ref beside the repository is absent (set PORTICO_REF_DIR): no reference captures")
	}
	var files []string
	for _, f := range []string{"gk-h323plus.pcapng", "gk-h323plus-notunnel.pcapng", "gk-ooh323c.pcapng"} {
		files = append(files, filepath.Join(ref, "captures", "gnugk", f))
	}
	roundTrip(t, vectorsOf(t, files, "q931 && tcp.len>0 && !tcp.analysis.retransmission"), 1, 20)
}

func roundTrip(t *testing.T, vs []vector, minFastStart, minMessages int) {
	counts := map[string]int{}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			var out []byte
			var err error
			if v.olc {
				var olc h245.OpenLogicalChannel
				if err = olc.Unmarshal(v.payload); err == nil {
					out, err = olc.Marshal()
				}
			} else {
				var m h245.MultimediaSystemControlMessage
				if err = m.Unmarshal(v.payload); err == nil {
					out, err = m.Marshal()
				}
			}
			if v.bad {
				if err == nil && bytes.Equal(out, v.payload) {
					t.Fatalf("malformed input round-tripped")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, v.payload) {
				t.Fatalf("round trip differs\n got % x\nwant % x", out, v.payload)
			}
			if v.olc {
				counts["fastStart"]++
			} else {
				counts["message"]++
			}
		})
	}
	if counts["fastStart"] < minFastStart || counts["message"] < minMessages {
		t.Fatalf("too few vectors: %v", counts)
	}
	t.Logf("round-tripped: %v", counts)
}
