package ras

import (
	"fmt"
	"net/netip"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h225"
)

// Standard identifiers of the H.460 features Portico handles: the
// GenericIdentifier "standard" value of their GenericData (H.225.0 §7.15
// and the H.460.x Recommendations).
const (
	H46018 = 18 // H.460.18 H.225.0 signalling traversal of NATs and firewalls
	H46019 = 19 // H.460.19 media traversal of NATs and firewalls
	H46023 = 23 // H.460.23 NAT detection by the gatekeeper
	H46024 = 24 // H.460.24 point-to-point media through NATs
)

// Parameter identifiers inside the features above.
const (
	// H46018IncomingCall is H.460.18's parameter carrying an
	// IncomingCallIndication (raw content) in an SCI.
	H46018IncomingCall = 1
	// H46019TransmitMultiplexed (supportTransmitMultiplexedMedia) and
	// H46019TraversalServer (mediaTraversalServer) are H.460.19's flags.
	H46019TransmitMultiplexed = 1
	H46019TraversalServer     = 2
)

// Feature returns the GenericData of standard feature id with params.
func Feature(id int64, params ...h225.EnumeratedParameter) h225.GenericData {
	return h225.GenericData{
		Id:         h225.GenericIdentifier{Choice: h225.GenericIdentifier_Standard, Standard: id},
		Parameters: params, HasParameters: len(params) > 0,
	}
}

// Flag returns a parameter without content (its presence is the value).
func Flag(id int64) h225.EnumeratedParameter {
	return h225.EnumeratedParameter{Id: h225.GenericIdentifier{Choice: h225.GenericIdentifier_Standard, Standard: id}}
}

// Supported returns a featureSet listing features as supportedFeatures.
func Supported(features ...h225.GenericData) *h225.FeatureSet {
	return &h225.FeatureSet{SupportedFeatures: features, HasSupportedFeatures: len(features) > 0}
}

func isStd(g *h225.GenericIdentifier, id int64) bool {
	return g.Choice == h225.GenericIdentifier_Standard && g.Standard == id
}

// Generic returns the entry of list whose identifier is standard id, or
// nil.
func Generic(list []h225.GenericData, id int64) *h225.GenericData {
	for i := range list {
		if isStd(&list[i].Id, id) {
			return &list[i]
		}
	}
	return nil
}

// FeatureIn returns standard feature id from fs's needed, desired or
// supported features (in that order), or nil.
func FeatureIn(fs *h225.FeatureSet, id int64) *h225.GenericData {
	if fs == nil {
		return nil
	}
	for _, l := range [][]h225.GenericData{fs.NeededFeatures, fs.DesiredFeatures, fs.SupportedFeatures} {
		if g := Generic(l, id); g != nil {
			return g
		}
	}
	return nil
}

// Param returns g's parameter with standard identifier id, or nil.
func Param(g *h225.GenericData, id int64) *h225.EnumeratedParameter {
	if g == nil {
		return nil
	}
	for i := range g.Parameters {
		if isStd(&g.Parameters[i].Id, id) {
			return &g.Parameters[i]
		}
	}
	return nil
}

// FindFeature returns standard feature id of m, looked up in its
// featureSet and then in its genericData, or nil.
func FindFeature(m *h225.RasMessage, id int64) *h225.GenericData {
	fs, gd, _ := featureFields(m)
	if fs != nil {
		if g := FeatureIn(*fs, id); g != nil {
			return g
		}
	}
	if gd == nil {
		return nil
	}
	return Generic(*gd, id)
}

// SetFeatures sets m's featureSet to fs (when m's kind has one) and its
// genericData to gd. It reports false, changing nothing, for kinds
// without genericData or a nil alternative.
func SetFeatures(m *h225.RasMessage, fs *h225.FeatureSet, gd []h225.GenericData) bool {
	f, g, has := featureFields(m)
	if g == nil || fs != nil && f == nil {
		return false
	}
	if f != nil {
		*f = fs
	}
	*g, *has = gd, len(gd) > 0
	return true
}

// featureFields returns pointers to the featureSet (nil for kinds without
// one), genericData and its presence flag of m.
func featureFields(m *h225.RasMessage) (**h225.FeatureSet, *[]h225.GenericData, *bool) {
	switch c := m.Choice; {
	case c == h225.RasMessage_GatekeeperRequest && m.GatekeeperRequest != nil:
		r := m.GatekeeperRequest
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_GatekeeperConfirm && m.GatekeeperConfirm != nil:
		r := m.GatekeeperConfirm
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_GatekeeperReject && m.GatekeeperReject != nil:
		r := m.GatekeeperReject
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_RegistrationRequest && m.RegistrationRequest != nil:
		r := m.RegistrationRequest
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_RegistrationConfirm && m.RegistrationConfirm != nil:
		r := m.RegistrationConfirm
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_RegistrationReject && m.RegistrationReject != nil:
		r := m.RegistrationReject
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_AdmissionRequest && m.AdmissionRequest != nil:
		r := m.AdmissionRequest
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_AdmissionConfirm && m.AdmissionConfirm != nil:
		r := m.AdmissionConfirm
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_AdmissionReject && m.AdmissionReject != nil:
		r := m.AdmissionReject
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_LocationRequest && m.LocationRequest != nil:
		r := m.LocationRequest
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_LocationConfirm && m.LocationConfirm != nil:
		r := m.LocationConfirm
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_LocationReject && m.LocationReject != nil:
		r := m.LocationReject
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_ServiceControlIndication && m.ServiceControlIndication != nil:
		r := m.ServiceControlIndication
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_ServiceControlResponse && m.ServiceControlResponse != nil:
		r := m.ServiceControlResponse
		return &r.FeatureSet, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_UnregistrationRequest && m.UnregistrationRequest != nil:
		r := m.UnregistrationRequest
		return nil, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_UnregistrationConfirm && m.UnregistrationConfirm != nil:
		r := m.UnregistrationConfirm
		return nil, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_BandwidthRequest && m.BandwidthRequest != nil:
		r := m.BandwidthRequest
		return nil, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_DisengageRequest && m.DisengageRequest != nil:
		r := m.DisengageRequest
		return nil, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_DisengageConfirm && m.DisengageConfirm != nil:
		r := m.DisengageConfirm
		return nil, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_InfoRequest && m.InfoRequest != nil:
		r := m.InfoRequest
		return nil, &r.GenericData, &r.HasGenericData
	case c == h225.RasMessage_InfoRequestResponse && m.InfoRequestResponse != nil:
		r := m.InfoRequestResponse
		return nil, &r.GenericData, &r.HasGenericData
	}
	return nil, nil, nil
}

// IncomingCallIndication is H.460.18's request, sent by the gatekeeper in
// an SCI, that the endpoint open a call signalling connection to
// CallSignal for the call with identifier CallID (H.460.18 §7.2).
type IncomingCallIndication struct {
	CallSignal netip.AddrPort
	CallID     []byte // 16 octets
}

// Append appends the ALIGNED PER encoding of the IncomingCallIndication
// SEQUENCE { callSignallingAddress TransportAddress, callID
// CallIdentifier, ... } to dst.
func (ic *IncomingCallIndication) Append(dst []byte) ([]byte, error) {
	e := asn1per.NewEncoder(dst)
	e.PutBool(false) // no extension additions
	t := Transport(ic.CallSignal)
	if err := t.Encode(e); err != nil {
		return dst, fmt.Errorf("ras: incoming call indication: %w", err)
	}
	id := h225.CallIdentifier{Guid: h225.GloballyUniqueID(ic.CallID)}
	if err := id.Encode(e); err != nil {
		return dst, fmt.Errorf("ras: incoming call indication: %w", err)
	}
	return e.Complete(), nil
}

// ParseIncomingCallIndication decodes what Append encodes; additions
// after the extension marker are skipped. CallID aliases b.
func ParseIncomingCallIndication(b []byte) (IncomingCallIndication, error) {
	d := asn1per.NewDecoder(b)
	var t h225.TransportAddress
	var id h225.CallIdentifier
	_, err := d.Bool()
	if err == nil {
		err = t.Decode(d)
	}
	if err == nil {
		err = id.Decode(d)
	}
	if err != nil {
		return IncomingCallIndication{}, fmt.Errorf("ras: incoming call indication: %w", err)
	}
	ap, err := AddrPort(&t)
	if err != nil {
		return IncomingCallIndication{}, fmt.Errorf("ras: incoming call indication: %w", err)
	}
	return IncomingCallIndication{CallSignal: ap, CallID: id.Guid}, nil
}

// IncomingCall returns the H.460.18 feature carrying ic, for the
// supportedFeatures of an SCI (see SCI and Supported).
func IncomingCall(ic IncomingCallIndication) (h225.GenericData, error) {
	raw, err := ic.Append(nil)
	if err != nil {
		return h225.GenericData{}, err
	}
	p := Flag(H46018IncomingCall)
	p.Content = &h225.Content{Choice: h225.Content_Raw_, Raw_: raw}
	return Feature(H46018, p), nil
}

// FindIncomingCall returns the IncomingCallIndication of an H.460.18 SCI.
func FindIncomingCall(m *h225.RasMessage) (IncomingCallIndication, error) {
	p := Param(FindFeature(m, H46018), H46018IncomingCall)
	if p == nil || p.Content == nil || p.Content.Choice != h225.Content_Raw_ {
		return IncomingCallIndication{}, ErrNoFeature
	}
	return ParseIncomingCallIndication(p.Content.Raw_)
}
