package sample

import (
	"encoding/json"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestTsharkRAS writes every message the ras constructors build into a
// pcap on UDP 1719 and checks that tshark's H.225.0 RAS (and H.460.18)
// dissectors read them without complaint, showing the aliases and
// transport addresses that went in.
func TestTsharkRAS(t *testing.T) {
	testpeer.Require(t, "tshark")
	e := Endpoint()
	e.EndpointID = "ep-0001"
	e.FeatureSet = ras.Supported(ras.Feature(ras.H46018), ras.Feature(ras.H46019, ras.Flag(ras.H46019TransmitMultiplexed)))
	c := ras.Call{EndpointID: "ep-0001", Ref: 42, ConferenceID: ConferenceID, ID: CallID}
	dest := []h225.AliasAddress{ras.E164("5295672")}
	grq, rrq, urq := ras.GRQ(1, e), ras.RRQ(2, e), ras.URQ(3, e)
	arq := ras.ARQ(4, "ep-0001", []h225.AliasAddress{ras.H323ID("portico-ep")}, dest, 1280, 42, ConferenceID, CallID, false)
	lrq, drq, irq := ras.LRQ(5, dest, GatekeeperRA), ras.DRQ(6, c, h225.DisengageReason_NormalDrop), ras.IRQ(7, 42, GatekeeperRA)
	ic, err := ras.IncomingCall(ras.IncomingCallIndication{CallSignal: netip.MustParseAddrPort("127.0.0.1:1720"), CallID: CallID})
	if err != nil {
		t.Fatal(err)
	}
	sci := ras.SCI(8, ras.Supported(ic))
	type msg struct {
		m      *h225.RasMessage
		toGK   bool
		fields [][2]string // tshark field, value wanted
	}
	msgs := []msg{
		{grq, true, [][2]string{{"h225.h323_ID", "portico-ep"}, {"h225.ipV4", "127.0.0.10"}, {"h225.ipV4_port", "1719"}, {"h225.gatekeeperIdentifier", "portico-gk"}}},
		{ras.GCF(grq.GatekeeperRequest, "portico-gk", GatekeeperRA), false, [][2]string{{"h225.ipV4", "127.0.0.1"}}},
		{ras.GRJ(grq.GatekeeperRequest, h225.GatekeeperRejectReason_TerminalExcluded), false, nil},
		{rrq, true, [][2]string{{"h225.dialledDigits", "1001"}, {"h225.ipV4_port", "1720"}, {"h225.standard", "18"}, {"h225.standard", "19"}}},
		{ras.RCF(rrq.RegistrationRequest, "portico-gk", "ep-0001", GatekeeperRA, 60), false, [][2]string{{"h225.endpointIdentifier", "ep-0001"}, {"h225.timeToLive", "60"}}},
		{ras.RRJ(rrq.RegistrationRequest, h225.RegistrationRejectReason_DuplicateAlias), false, nil},
		{urq, true, [][2]string{{"h225.endpointIdentifier", "ep-0001"}, {"h225.h323_ID", "portico-ep"}}},
		{ras.UCF(urq.UnregistrationRequest), false, nil},
		{arq, true, [][2]string{{"h225.dialledDigits", "5295672"}, {"h225.bandWidth", "1280"}}},
		{ras.ACF(arq.AdmissionRequest, CalleeCall, false), false, [][2]string{{"h225.ipV4", "127.0.0.20"}, {"h225.ipV4_port", "1720"}}},
		{ras.ARJ(arq.AdmissionRequest, h225.AdmissionRejectReason_CalledPartyNotRegistered), false, nil},
		{lrq, false, [][2]string{{"h225.dialledDigits", "5295672"}, {"h225.ipV4", "127.0.0.1"}}},
		{ras.LCF(lrq.LocationRequest, CalleeCall, EndpointRAS), true, [][2]string{{"h225.ipV4", "127.0.0.20"}, {"h225.ipV4", "127.0.0.10"}}},
		{ras.LRJ(lrq.LocationRequest, h225.LocationRejectReason_RequestDenied), true, nil},
		{ras.BRQ(9, c, 640), true, [][2]string{{"h225.bandWidth", "640"}, {"h225.endpointIdentifier", "ep-0001"}}},
		{drq, true, [][2]string{{"h225.endpointIdentifier", "ep-0001"}}},
		{ras.DCF(drq.DisengageRequest), false, nil},
		{irq, false, [][2]string{{"h225.ipV4", "127.0.0.1"}}},
		{ras.IRR(irq.InfoRequest, 0, e), true, [][2]string{{"h225.h323_ID", "portico-ep"}, {"h225.ipV4", "127.0.0.10"}}},
		{sci, false, [][2]string{{"h225.standard", "18"}, {"h460.18.callSignallingAddress", "0"}, {"h225.ipV4", "127.0.0.1"}}},
		{ras.SCR(sci.ServiceControlIndication, h225.ServiceControlResponseResult_Started, nil), true, nil},
	}
	path := filepath.Join(t.TempDir(), "ras.pcap")
	w, err := capture.NewPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		b, err := m.m.Marshal()
		if err != nil {
			t.Fatalf("%d %s: %v", i+1, ras.Name(m.m), err)
		}
		src, dst := GatekeeperRA, EndpointRAS
		if m.toGK {
			src, dst = dst, src
		}
		if err := w.UDP(src, dst, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tshark", "-r", path, "-T", "json").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var frames []map[string]any
	if err := json.Unmarshal(out, &frames); err != nil {
		t.Fatalf("tshark json: %v", err)
	}
	if len(frames) != len(msgs) {
		t.Fatalf("%d frames, want %d", len(frames), len(msgs))
	}
	for i, f := range frames {
		got := map[string][]string{}
		flatten(f, "", got)
		name := ras.Name(msgs[i].m)
		for k, vs := range got {
			if strings.HasPrefix(k, "_ws.malformed") || strings.HasPrefix(k, "_ws.expert") && strings.Contains(strings.Join(got["_ws.expert.severity"], ","), "error") {
				t.Errorf("frame %d %s: tshark reports %s %v", i+1, name, k, vs)
			}
		}
		if want := strconv.Itoa(msgs[i].m.Choice); !has(got, "h225.RasMessage", want) {
			t.Errorf("frame %d %s: h225.RasMessage = %v, want %s", i+1, name, got["h225.RasMessage"], want)
		}
		if seq, _ := ras.SeqNum(msgs[i].m); !has(got, "h225.requestSeqNum", strconv.Itoa(seq)) {
			t.Errorf("frame %d %s: h225.requestSeqNum = %v, want %d", i+1, name, got["h225.requestSeqNum"], seq)
		}
		for _, kv := range msgs[i].fields {
			if !has(got, kv[0], kv[1]) {
				t.Errorf("frame %d %s: %s = %v, want %q", i+1, name, kv[0], got[kv[0]], kv[1])
			}
		}
	}
}
