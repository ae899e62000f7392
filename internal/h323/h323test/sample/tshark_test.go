package sample

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/testpeer"
)

const h245Port = 11000

// writeCapture encodes the sample messages into a pcap: RAS RRQ/RCF/ARQ on
// UDP 1719, Q.931 Setup/Connect over TPKT on TCP 1720, and an H.245
// OpenLogicalChannel over TPKT on TCP h245Port.
func writeCapture(t *testing.T, path string) {
	w, err := capture.NewPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, m := range []struct {
		src, dst netip.AddrPort
		enc      func() ([]byte, error)
	}{
		{EndpointRAS, GatekeeperRA, RRQ().Marshal},
		{GatekeeperRA, EndpointRAS, RCF().Marshal},
		{EndpointRAS, GatekeeperRA, ARQ().Marshal},
	} {
		b, err := m.enc()
		if err != nil {
			t.Fatalf("ras %d: %v", i, err)
		}
		if err := w.UDP(m.src, m.dst, b); err != nil {
			t.Fatal(err)
		}
	}
	setup, err := Q931(q931.Setup, false, SetupUUIE())
	if err != nil {
		t.Fatal(err)
	}
	connect, err := Q931(q931.Connect, true, ConnectUUIE())
	if err != nil {
		t.Fatal(err)
	}
	callee := netip.AddrPortFrom(CalleeCall.Addr(), 1720)
	caller := netip.AddrPortFrom(EndpointCall.Addr(), 40000)
	for _, s := range []struct {
		src, dst netip.AddrPort
		b        []byte
	}{{caller, callee, setup}, {callee, caller, connect}} {
		pkt, err := q931.AppendTPKT(nil, s.b)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.TCP(s.src, s.dst, pkt); err != nil {
			t.Fatal(err)
		}
	}
	olc, err := OLCMessage().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pkt, _ := q931.AppendTPKT(nil, olc)
	if err := w.TCP(netip.AddrPortFrom(caller.Addr(), 40001), netip.AddrPortFrom(callee.Addr(), h245Port), pkt); err != nil {
		t.Fatal(err)
	}
}

// flatten collects every leaf of tshark's JSON tree as key -> values.
func flatten(v any, key string, out map[string][]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			flatten(c, k, out)
		}
	case []any:
		for _, c := range x {
			flatten(c, key, out)
		}
	case string:
		out[key] = append(out[key], x)
	}
}

func has(m map[string][]string, key, want string) bool {
	for _, v := range m[key] {
		if v == want {
			return true
		}
	}
	return false
}

// TestTsharkDissects writes what the codecs encode into a pcap and has
// tshark's H.225.0, Q.931 and H.245 dissectors read it back.
func TestTsharkDissects(t *testing.T) {
	testpeer.Require(t, "tshark")
	path := filepath.Join(t.TempDir(), "h323.pcap")
	writeCapture(t, path)
	out, err := exec.Command("tshark", "-r", path, "-T", "json", "-d", fmt.Sprintf("tcp.port==%d,h245", h245Port)).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var frames []map[string]any
	if err := json.Unmarshal(out, &frames); err != nil {
		t.Fatalf("tshark json: %v", err)
	}
	if len(frames) != 6 {
		t.Fatalf("%d frames, want 6", len(frames))
	}
	per := make([]map[string][]string, len(frames))
	for i, f := range frames {
		per[i] = map[string][]string{}
		flatten(f, "", per[i])
		for k, vs := range per[i] {
			if strings.HasPrefix(k, "_ws.malformed") || strings.HasPrefix(k, "_ws.expert") && strings.Contains(strings.Join(per[i]["_ws.expert.severity"], ","), "error") {
				t.Errorf("frame %d: tshark reports %s %v", i+1, k, vs)
			}
		}
	}
	checks := []struct {
		frame      int
		key, value string
	}{
		{1, "h225.RasMessage", "3"}, // registrationRequest
		{1, "h225.h323_ID", "portico-ep"},
		{1, "h225.dialledDigits", "1001"},
		{1, "h225.ipV4", "127.0.0.10"},
		{1, "h225.ipV4_port", "1720"},
		{1, "h225.timeToLive", "300"},
		{2, "h225.RasMessage", "4"}, // registrationConfirm
		{2, "h225.endpointIdentifier", "ep-0001"},
		{3, "h225.RasMessage", "9"}, // admissionRequest
		{3, "h225.dialledDigits", "5295672"},
		{3, "h225.bandWidth", "1280"},
		{4, "q931.message_type", "0x05"},
		{4, "q931.called_party_number.digits", "5295672"},
		{4, "h225.h323_message_body", "0"}, // setup
		{4, "h225.h323_ID", "portico-ep"},
		{4, "h225.ipV4", "127.0.0.20"},
		{4, "h245.forwardLogicalChannelNumber", "1"},
		{5, "q931.message_type", "0x07"},
		{5, "h225.h323_message_body", "2"}, // connect
		{6, "h245.request", "3"},           // openLogicalChannel
		{6, "h245.forwardLogicalChannelNumber", "1"},
		{6, "h245.g711Alaw64k", "20"},
		{6, "h245.ip4_network", "127.0.0.10"},
		{6, "h245.tsapIdentifier", "5001"},
	}
	for _, c := range checks {
		if !has(per[c.frame-1], c.key, c.value) {
			t.Errorf("frame %d: %s = %v, want %q", c.frame, c.key, per[c.frame-1][c.key], c.value)
		}
	}
}
