package h323test

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/testpeer"
)

// Dissected is one frame as tshark dissects it: every leaf field of its
// JSON tree by field name (h225.ipV4, h245.tsapIdentifier, q931.message_type,
// ...); the order of values is not significant.
type Dissected struct {
	Frame     int
	Protocols string // frame.protocols, e.g. "eth:ethertype:ip:tcp:tpkt:q931:h225"
	Fields    map[string][]string
	// Malformed is set when tshark reports the frame malformed or attaches
	// an expert item of severity error to it.
	Malformed bool
}

// Has reports whether field has value want in the frame.
func (d *Dissected) Has(field, want string) bool {
	for _, v := range d.Fields[field] {
		if v == want {
			return true
		}
	}
	return false
}

// Dissect runs tshark on the pcap at path with the extra arguments (for
// instance "-d", "tcp.port==N,tpkt" or "-Y", "h225") and returns its
// frames. It fails the test when tshark fails; it needs the tshark peer
// (see testpeer.Require).
func Dissect(t testing.TB, path string, args ...string) []Dissected {
	t.Helper()
	testpeer.Require(t, "tshark")
	full := append([]string{"-r", path, "-T", "json", "-o", "tcp.desegment_tcp_streams:TRUE"}, args...)
	out, err := exec.Command("tshark", full...).Output()
	if err != nil {
		t.Fatalf("h323test: tshark %s: %v", strings.Join(full, " "), err)
	}
	return parseTsharkJSON(t, out)
}

// Dissect runs tshark on r's pcap with the decode-as rules of the ports the
// components marked, plus args.
func (r *Recorder) Dissect(t testing.TB, args ...string) []Dissected {
	t.Helper()
	r.mu.Lock()
	if r.w != nil {
		r.w.Sync()
	}
	r.mu.Unlock()
	return Dissect(t, r.path, append(r.DecodeAs(), args...)...)
}

func parseTsharkJSON(t testing.TB, out []byte) []Dissected {
	t.Helper()
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil
	}
	var frames []map[string]any
	if err := json.Unmarshal(out, &frames); err != nil {
		t.Fatalf("h323test: tshark json: %v", err)
	}
	res := make([]Dissected, 0, len(frames))
	for _, f := range frames {
		d := Dissected{Fields: map[string][]string{}}
		flattenJSON(f, "", d.Fields)
		d.Frame, _ = strconv.Atoi(first(d.Fields["frame.number"]))
		d.Protocols = first(d.Fields["frame.protocols"])
		if len(d.Fields["_ws.malformed"]) > 0 || len(d.Fields["_ws.malformed.expert"]) > 0 {
			d.Malformed = true
		}
		for _, s := range d.Fields["_ws.expert.severity"] {
			// 8388608 is PI_ERROR in tshark's JSON output
			if s == "8388608" {
				d.Malformed = true
			}
		}
		res = append(res, d)
	}
	return res
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// flattenJSON collects every leaf of tshark's JSON tree as name -> values.
func flattenJSON(v any, key string, out map[string][]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if strings.HasPrefix(k, "_ws.malformed") {
				out["_ws.malformed"] = append(out["_ws.malformed"], k)
			}
			flattenJSON(c, k, out)
		}
	case []any:
		for _, c := range x {
			flattenJSON(c, key, out)
		}
	case string:
		out[key] = append(out[key], x)
	}
}

// NoMalformed fails the test for every malformed frame in frames.
func NoMalformed(t testing.TB, frames []Dissected) {
	t.Helper()
	for _, f := range frames {
		if f.Malformed {
			t.Errorf("frame %d (%s) is malformed: expert %v", f.Frame, f.Protocols, f.Fields["_ws.expert.message"])
		}
	}
}

// Values returns every value of field over frames, in frame order.
func Values(frames []Dissected, field string) []string {
	var out []string
	for _, f := range frames {
		out = append(out, f.Fields[field]...)
	}
	return out
}
