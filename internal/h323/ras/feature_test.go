package ras

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
)

// TestFeatures builds an RRQ announcing H.460.18, .19, .23 and .24 and
// finds each feature by its standard identifier in the decoded message.
func TestFeatures(t *testing.T) {
	e := endpoint()
	e.FeatureSet = &h225.FeatureSet{
		DesiredFeatures: []h225.GenericData{Feature(H46018)}, HasDesiredFeatures: true,
		SupportedFeatures: []h225.GenericData{
			Feature(H46019, Flag(H46019TransmitMultiplexed)),
			Feature(H46023, Flag(1)),
		}, HasSupportedFeatures: true,
	}
	e.GenericData = []h225.GenericData{Feature(H46024)}
	m := roundTrip(t, RRQ(1, e))
	tests := []struct {
		name   string
		id     int64
		params []int64
		absent []int64
	}{
		{"H.460.18 desired", H46018, nil, []int64{H46018IncomingCall}},
		{"H.460.19 supported", H46019, []int64{H46019TransmitMultiplexed}, []int64{H46019TraversalServer}},
		{"H.460.23 supported", H46023, []int64{1}, nil},
		{"H.460.24 in genericData", H46024, nil, []int64{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := FindFeature(m, tc.id)
			if g == nil {
				t.Fatalf("feature %d not found", tc.id)
			}
			if g.Id.Standard != tc.id {
				t.Errorf("found feature %d", g.Id.Standard)
			}
			for _, p := range tc.params {
				if Param(g, p) == nil {
					t.Errorf("parameter %d not found", p)
				}
			}
			for _, p := range tc.absent {
				if Param(g, p) != nil {
					t.Errorf("parameter %d found", p)
				}
			}
		})
	}
	if g := FindFeature(m, 9); g != nil {
		t.Errorf("H.460.9 found: %+v", g)
	}
	if FeatureIn(nil, H46018) != nil || Param(nil, 1) != nil {
		t.Error("lookups in nothing find something")
	}
	oid := h225.GenericData{Id: h225.GenericIdentifier{Choice: h225.GenericIdentifier_Oid, Oid: asn1per.OID("1.2.3")}}
	if Generic([]h225.GenericData{oid}, 0) != nil {
		t.Error("an OID identifier matches a standard one")
	}
	for _, k := range []*h225.RasMessage{{Choice: h225.RasMessage_RegistrationRequest}, {Choice: h225.RasMessage_NonStandardMessage}} {
		if FindFeature(k, H46018) != nil {
			t.Errorf("feature found in an empty %s", Name(k))
		}
	}
}

// TestFeaturesEveryKind sets an H.460.18 feature with SetFeatures in the
// featureSet or genericData of each kind of message that has one and finds
// it again after decoding.
func TestFeaturesEveryKind(t *testing.T) {
	e := endpoint()
	grq, rrq, urq := GRQ(1, e), RRQ(1, e), URQ(1, e)
	arq := ARQ(1, "ep", nil, nil, 1, 1, confID, callID, false)
	lrq, drq, irq, sci := LRQ(1, nil, gkRAS), DRQ(1, call(), 0), IRQ(1, 0, gkRAS), SCI(1, nil)
	withSet := []*h225.RasMessage{grq, rrq, arq, lrq, sci,
		GCF(grq.GatekeeperRequest, "", gkRAS), GRJ(grq.GatekeeperRequest, 0),
		RCF(rrq.RegistrationRequest, "", "ep", gkRAS, 0), RRJ(rrq.RegistrationRequest, 0),
		ACF(arq.AdmissionRequest, gkRAS, false), ARJ(arq.AdmissionRequest, 0),
		LCF(lrq.LocationRequest, gkRAS, gkRAS), LRJ(lrq.LocationRequest, 0), SCR(sci.ServiceControlIndication, -1, nil)}
	dataOnly := []*h225.RasMessage{urq, BRQ(1, call(), 1), drq, irq, IRR(irq.InfoRequest, 0, e),
		UCF(urq.UnregistrationRequest), DCF(drq.DisengageRequest)}
	fs, gd := Supported(Feature(H46018)), []h225.GenericData{Feature(H46024)}
	for _, m := range append(withSet, dataOnly...) {
		t.Run(Name(m), func(t *testing.T) {
			set := fs
			if slices.Contains(dataOnly, m) {
				if SetFeatures(m, fs, gd) {
					t.Fatal("SetFeatures sets a featureSet the message does not have")
				}
				set = nil
			}
			if !SetFeatures(m, set, gd) {
				t.Fatal("SetFeatures fails")
			}
			got := roundTrip(t, m)
			if (FindFeature(got, H46018) != nil) != (set != nil) {
				t.Error("H.460.18 featureSet entry lost or invented")
			}
			if FindFeature(got, H46024) == nil {
				t.Error("H.460.24 genericData entry not found")
			}
		})
	}
	if SetFeatures(&h225.RasMessage{Choice: h225.RasMessage_RegistrationRequest}, nil, gd) {
		t.Error("SetFeatures on a nil alternative")
	}
	if SetFeatures(&h225.RasMessage{Choice: h225.RasMessage_NonStandardMessage, NonStandardMessage: &h225.NonStandardMessage{}}, nil, gd) {
		t.Error("SetFeatures on a kind the helpers do not cover")
	}
}

// TestIncomingCall sends an H.460.18 IncomingCallIndication in an SCI.
func TestIncomingCall(t *testing.T) {
	for _, sig := range []string{"198.51.100.7:1720", "[2001:db8::7]:11720"} {
		t.Run(sig, func(t *testing.T) {
			want := IncomingCallIndication{CallSignal: mustAP(sig), CallID: callID}
			g, err := IncomingCall(want)
			if err != nil {
				t.Fatal(err)
			}
			m := roundTrip(t, SCI(9, Supported(g)))
			got, err := FindIncomingCall(m)
			if err != nil {
				t.Fatal(err)
			}
			if got.CallSignal != want.CallSignal || !bytes.Equal(got.CallID, want.CallID) {
				t.Errorf("incoming call = %+v, want %+v", got, want)
			}
		})
	}
	if _, err := FindIncomingCall(SCI(1, Supported(Feature(H46018)))); !errors.Is(err, ErrNoFeature) {
		t.Errorf("SCI without indication: %v", err)
	}
	if _, err := IncomingCall(IncomingCallIndication{CallSignal: epCall, CallID: []byte{1}}); err == nil {
		t.Error("a 1-octet call identifier encodes")
	}
	if _, err := ParseIncomingCallIndication([]byte{0x00}); !errors.Is(err, asn1per.ErrTruncated) {
		t.Errorf("1-octet indication: %v", err)
	}
}

// TestCapturedH46018 finds H.460.18 in the keep-alive RRQs of the
// reference captures (read where they lie in ../shared/ref).
func TestCapturedH46018(t *testing.T) {
	n := 0
	for _, file := range capture.Captures(t) {
		for _, fr := range capture.Frames(t, file, "h225.registrationRequest_element and h225.standard == 18") {
			m, err := Parse(fr.Payload)
			if err != nil {
				t.Errorf("%s frame %d: %v", fr.File, fr.Num, err)
				continue
			}
			n++
			if g := FindFeature(m, H46018); g == nil {
				t.Errorf("%s frame %d: no H.460.18 feature", fr.File, fr.Num)
			}
			if s, ok := SeqNum(m); !ok || s == 0 {
				t.Errorf("%s frame %d: requestSeqNum %d %v", fr.File, fr.Num, s, ok)
			}
		}
	}
	if n == 0 {
		t.Fatal("no H.460.18 RRQ in the reference captures")
	}
}

func FuzzParse(f *testing.F) {
	e := endpoint()
	e.FeatureSet = Supported(Feature(H46018), Feature(H46019, Flag(1)))
	g, _ := IncomingCall(IncomingCallIndication{CallSignal: epCall, CallID: callID})
	for _, m := range []*h225.RasMessage{RRQ(1, e), GRQ(2, e), SCI(3, Supported(g)), IRR(nil, 4, e), BRQ(5, call(), 10)} {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		// The helpers must cope with whatever decodes.
		_, _ = SeqNum(m)
		_ = Name(m)
		_ = Matches(m, m)
		_ = FindFeature(m, H46018)
		_, _ = FindIncomingCall(m)
	})
}

func FuzzParseIncomingCallIndication(f *testing.F) {
	for _, sig := range []string{"198.51.100.7:1720", "[2001:db8::7]:11720"} {
		ic := IncomingCallIndication{CallSignal: mustAP(sig), CallID: callID}
		b, err := ic.Append(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ic, err := ParseIncomingCallIndication(b)
		if err != nil {
			return
		}
		out, err := ic.Append(nil)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", ic, err)
		}
		ic2, err := ParseIncomingCallIndication(out)
		if err != nil || ic2.CallSignal != ic.CallSignal || !bytes.Equal(ic2.CallID, ic.CallID) {
			t.Fatalf("%+v re-decodes as %+v (%v)", ic, ic2, err)
		}
	})
}
