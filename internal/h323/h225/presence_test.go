package h225

import (
	"errors"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/asn1per"
)

// TestMarshalPresenceMismatch sets an optional value without its HasX flag:
// Marshal must fail naming the field instead of dropping the value (before
// the generator checked, the fastStart elements vanished silently).
func TestMarshalPresenceMismatch(t *testing.T) {
	setup := func(f func(s *SetupUUIE)) *H323UserInformation {
		s := &SetupUUIE{ProtocolIdentifier: ProtocolIdentifier(ProtocolV4)}
		s.ConferenceID = make([]byte, 16)
		s.CallIdentifier = &CallIdentifier{Guid: make([]byte, 16)}
		f(s)
		return &H323UserInformation{H323UuPdu: H323UUPDU{H323MessageBody: H323UUPDUH323MessageBody{Choice: H323UUPDUH323MessageBody_Setup, Setup: s}}}
	}
	for _, tc := range []struct {
		name  string
		m     *H323UserInformation
		field string // "" = must encode
	}{
		{"fastStart without flag", setup(func(s *SetupUUIE) { s.FastStart = [][]byte{{1, 2, 3}} }), "fastStart"},
		{"fastStart with flag", setup(func(s *SetupUUIE) { s.FastStart, s.HasFastStart = [][]byte{{1, 2, 3}}, true }), ""},
		{"empty fastStart present", setup(func(s *SetupUUIE) { s.HasFastStart = true }), ""},
		{"mediaWaitForConnect without flag", setup(func(s *SetupUUIE) { s.MediaWaitForConnect = true }), "mediaWaitForConnect"},
		{"endpointIdentifier without flag", setup(func(s *SetupUUIE) { s.EndpointIdentifier = EndpointIdentifier(asn1per.BMP("ep")) }), "endpointIdentifier"},
		{"h245Control without flag", func() *H323UserInformation {
			m := setup(func(*SetupUUIE) {})
			m.H323UuPdu.H245Control = [][]byte{{0}}
			return m
		}(), "h245Control"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.m.Marshal()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				var back H323UserInformation
				if err := back.Unmarshal(out); err != nil {
					t.Fatalf("Unmarshal: %v", err)
				}
				if s := back.H323UuPdu.H323MessageBody.Setup; len(s.FastStart) != len(tc.m.H323UuPdu.H323MessageBody.Setup.FastStart) {
					t.Fatalf("fastStart: got %d elements", len(s.FastStart))
				}
				return
			}
			if err == nil {
				t.Fatalf("Marshal succeeded and dropped %s (% x)", tc.field, out)
			}
			if !errors.Is(err, asn1per.ErrPresence) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q: want ErrPresence naming %s", err, tc.field)
			}
		})
	}
}
