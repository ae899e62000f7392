package h323proxy

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// TestEveryBuiltMessageEncodes builds every answer Portico sends outside
// from an inside answer of each kind, and its own rejects, and encodes
// them: a field set without its presence flag would drop the message
// silently at run time.
func TestEveryBuiltMessageEncodes(t *testing.T) {
	s, err := New(testConfig(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s.extAddr = netip.MustParseAddrPort("198.51.100.1:1719")
	id := bytes.Repeat([]byte{4}, 16)
	reg := &registration{outsideID: "out", insideID: "in", aliases: []h225.AliasAddress{ras.H323ID("a")}, h46018: true}
	p := &pending{seq: 7, reg: reg, callID: id}
	arq := ras.ARQ(1, "in", nil, []h225.AliasAddress{ras.E164("1")}, 1, 1, id, id, false).AdmissionRequest
	lrq := ras.LRQ(1, []h225.AliasAddress{ras.E164("1")}, s.extAddr).LocationRequest
	for _, tc := range []struct {
		name string
		m    *h225.RasMessage
	}{
		{"UCF", &h225.RasMessage{Choice: h225.RasMessage_UnregistrationConfirm, UnregistrationConfirm: &h225.UnregistrationConfirm{}}},
		{"URJ", &h225.RasMessage{Choice: h225.RasMessage_UnregistrationReject, UnregistrationReject: &h225.UnregistrationReject{}}},
		{"ACF", ras.ACF(arq, netip.MustParseAddrPort("10.0.0.1:1720"), true)},
		{"ARJ", ras.ARJ(arq, h225.AdmissionRejectReason_CalledPartyNotRegistered)},
		{"LCF", ras.LCF(lrq, netip.MustParseAddrPort("10.0.0.1:1720"), netip.MustParseAddrPort("10.0.0.1:1719"))},
		{"LRJ", ras.LRJ(lrq, h225.LocationRejectReason_RequestDenied)},
		{"BCF", &h225.RasMessage{Choice: h225.RasMessage_BandwidthConfirm, BandwidthConfirm: &h225.BandwidthConfirm{BandWidth: 10}}},
		{"BRJ", &h225.RasMessage{Choice: h225.RasMessage_BandwidthReject, BandwidthReject: &h225.BandwidthReject{}}},
		{"DCF", &h225.RasMessage{Choice: h225.RasMessage_DisengageConfirm, DisengageConfirm: &h225.DisengageConfirm{}}},
		{"DRJ", &h225.RasMessage{Choice: h225.RasMessage_DisengageReject, DisengageReject: &h225.DisengageReject{}}},
		{"IACK", &h225.RasMessage{Choice: h225.RasMessage_InfoRequestAck, InfoRequestAck: &h225.InfoRequestAck{}}},
		{"INAK", &h225.RasMessage{Choice: h225.RasMessage_InfoRequestNak, InfoRequestNak: &h225.InfoRequestNak{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := s.outsideResponse(p, tc.m)
			if out == nil {
				t.Fatal("no answer built")
			}
			if _, err := out.Marshal(); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		m    *h225.RasMessage
	}{
		{"RCF", s.rcf(7, reg)},
		{"RRJ", s.rrj(7, h225.RegistrationRejectReason{Choice: h225.RegistrationRejectReason_DuplicateAlias, DuplicateAlias: reg.aliases})},
		{"inside URQ", s.insideURQ(7, reg)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.m.Marshal(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
