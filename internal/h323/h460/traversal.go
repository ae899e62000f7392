package h460

import (
	"bytes"
	"fmt"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h245"
)

// Object identifiers of the generic messages.
var (
	// MediaTraversalOID identifies H.460.19 genericInformation in
	// OpenLogicalChannel and OpenLogicalChannelAck.
	MediaTraversalOID = asn1per.OID("0.0.8.460.19.0.1")
	// SignallingTraversalOID identifies the H.460.18 H.245
	// genericIndication.
	SignallingTraversalOID = asn1per.OID("0.0.8.460.18.0.1")
)

// traversalParam is the standard parameter identifier of
// TraversalParameters within the H.460.19 genericInformation.
const traversalParam = 1

// TraversalParameters is the H.460.19 SEQUENCE TraversalParameters.
// Address fields are nil when absent; the integer fields have presence
// flags, and Encode fails with asn1per.ErrPresence when a value is set
// without its flag (as the generated types do).
type TraversalParameters struct {
	MultiplexedMediaChannel        *h245.TransportAddress // where to send multiplexed RTP
	MultiplexedMediaControlChannel *h245.TransportAddress // where to send multiplexed RTCP
	KeepAliveChannel               *h245.TransportAddress // where to send media keep-alives
	Ext                            asn1per.Ext            // extension bitmap length and unknown additions
	MultiplexID                    uint32                 // the 4-octet prefix of multiplexed media
	KeepAliveInterval              uint32                 // seconds (TimeToLive, 1..2^32-1)
	KeepAlivePayloadType           uint8                  // RTP payload type of keep-alives (0..127)
	HasMultiplexID                 bool
	HasKeepAlivePayloadType        bool
	HasKeepAliveInterval           bool
}

// Encode writes p in ALIGNED PER.
func (p *TraversalParameters) Encode(e *asn1per.Encoder) error {
	if p == nil {
		return asn1per.Wrap(asn1per.ErrMissing, "TraversalParameters")
	}
	switch {
	case !p.HasMultiplexID && p.MultiplexID != 0:
		return asn1per.Wrap(asn1per.ErrPresence, "multiplexID")
	case !p.HasKeepAlivePayloadType && p.KeepAlivePayloadType != 0:
		return asn1per.Wrap(asn1per.ErrPresence, "keepAlivePayloadType")
	case !p.HasKeepAliveInterval && p.KeepAliveInterval != 0:
		return asn1per.Wrap(asn1per.ErrPresence, "keepAliveInterval")
	}
	ext := p.Ext.Present()
	e.PutBool(ext)
	for _, b := range [...]bool{p.MultiplexedMediaChannel != nil, p.MultiplexedMediaControlChannel != nil, p.HasMultiplexID,
		p.KeepAliveChannel != nil, p.HasKeepAlivePayloadType, p.HasKeepAliveInterval} {
		e.PutBool(b)
	}
	if p.MultiplexedMediaChannel != nil {
		if err := p.MultiplexedMediaChannel.Encode(e); err != nil {
			return asn1per.Wrap(err, "multiplexedMediaChannel")
		}
	}
	if p.MultiplexedMediaControlChannel != nil {
		if err := p.MultiplexedMediaControlChannel.Encode(e); err != nil {
			return asn1per.Wrap(err, "multiplexedMediaControlChannel")
		}
	}
	if p.HasMultiplexID {
		if err := e.PutConstrained(int64(p.MultiplexID), 0, 1<<32-1); err != nil {
			return asn1per.Wrap(err, "multiplexID")
		}
	}
	if p.KeepAliveChannel != nil {
		if err := p.KeepAliveChannel.Encode(e); err != nil {
			return asn1per.Wrap(err, "keepAliveChannel")
		}
	}
	if p.HasKeepAlivePayloadType {
		if err := e.PutConstrained(int64(p.KeepAlivePayloadType), 0, 127); err != nil {
			return asn1per.Wrap(err, "keepAlivePayloadType")
		}
	}
	if p.HasKeepAliveInterval {
		if err := e.PutConstrained(int64(p.KeepAliveInterval), 1, 1<<32-1); err != nil {
			return asn1per.Wrap(err, "keepAliveInterval")
		}
	}
	if ext {
		n := p.Ext.Len(0)
		e.PutExtBitmapLen(n)
		for i := 0; i < n; i++ {
			e.PutBool(p.Ext.Has(i))
		}
		p.Ext.EncodeUnknown(e)
	}
	return nil
}

// Decode reads p from ALIGNED PER. Decoded values alias the input.
func (p *TraversalParameters) Decode(d *asn1per.Decoder) error {
	*p = TraversalParameters{}
	if err := d.Enter(); err != nil {
		return asn1per.Wrap(err, "TraversalParameters")
	}
	pre, err := d.Bits(7)
	if err != nil {
		return asn1per.Wrap(err, "TraversalParameters")
	}
	has := func(i int) bool { return pre&(1<<(5-i)) != 0 }
	addr := func(dst **h245.TransportAddress, name string) error {
		*dst = new(h245.TransportAddress)
		return asn1per.Wrap((*dst).Decode(d), name)
	}
	num := func(lb, ub int64, name string) (int64, error) {
		v, err := d.Constrained(lb, ub)
		return v, asn1per.Wrap(err, name)
	}
	if has(0) {
		if err := addr(&p.MultiplexedMediaChannel, "multiplexedMediaChannel"); err != nil {
			return err
		}
	}
	if has(1) {
		if err := addr(&p.MultiplexedMediaControlChannel, "multiplexedMediaControlChannel"); err != nil {
			return err
		}
	}
	if p.HasMultiplexID = has(2); p.HasMultiplexID {
		v, err := num(0, 1<<32-1, "multiplexID")
		if err != nil {
			return err
		}
		p.MultiplexID = uint32(v)
	}
	if has(3) {
		if err := addr(&p.KeepAliveChannel, "keepAliveChannel"); err != nil {
			return err
		}
	}
	if p.HasKeepAlivePayloadType = has(4); p.HasKeepAlivePayloadType {
		v, err := num(0, 127, "keepAlivePayloadType")
		if err != nil {
			return err
		}
		p.KeepAlivePayloadType = uint8(v)
	}
	if p.HasKeepAliveInterval = has(5); p.HasKeepAliveInterval {
		v, err := num(1, 1<<32-1, "keepAliveInterval")
		if err != nil {
			return err
		}
		p.KeepAliveInterval = uint32(v)
	}
	if pre>>6 != 0 {
		var buf [16]bool
		present, err := d.ExtBitmap(buf[:0])
		if err != nil {
			return asn1per.Wrap(err, "TraversalParameters")
		}
		p.Ext.N = len(present)
		if err := d.ExtUnknown(&p.Ext, present, 0); err != nil {
			return asn1per.Wrap(err, "TraversalParameters")
		}
	}
	d.Leave()
	return nil
}

// Marshal returns the complete encoding of p, the contents of the
// OCTET STRING parameter.
func (p *TraversalParameters) Marshal() ([]byte, error) {
	e := asn1per.NewEncoder(nil)
	if err := p.Encode(e); err != nil {
		return nil, err
	}
	return e.Complete(), nil
}

// Unmarshal decodes p from b; p aliases b afterwards.
func (p *TraversalParameters) Unmarshal(b []byte) error {
	return p.Decode(asn1per.NewDecoder(b))
}

// VisitAddresses calls f on the unicast addresses among p's multiplexed
// media, media control and keep-alive channels; f may change them in place.
func (p *TraversalParameters) VisitAddresses(f func(*h245.UnicastAddress)) {
	for _, t := range [...]*h245.TransportAddress{p.MultiplexedMediaChannel, p.MultiplexedMediaControlChannel, p.KeepAliveChannel} {
		if t != nil && t.Choice == h245.TransportAddress_UnicastAddress && t.UnicastAddress != nil {
			f(t.UnicastAddress)
		}
	}
}

func isStandard(id *h245.CapabilityIdentifier, oid asn1per.ObjectIdentifier) bool {
	return id.Choice == h245.CapabilityIdentifier_Standard && bytes.Equal(id.Standard, oid)
}

// findParam returns the standard parameter n of g, or nil.
func findParam(g *h245.GenericMessage, n int64) *h245.GenericParameter {
	for i := range g.MessageContent {
		p := &g.MessageContent[i]
		if p.ParameterIdentifier.Choice == h245.ParameterIdentifier_Standard && p.ParameterIdentifier.Standard == n {
			return p
		}
	}
	return nil
}

// Traversal finds the H.460.19 element among gi (the genericInformation of
// an OpenLogicalChannel or OpenLogicalChannelAck) and decodes its
// TraversalParameters. found reports whether the element is there; an
// element without parameters returns found and ErrNoParameters.
func Traversal(gi []h245.GenericInformation) (p TraversalParameters, found bool, err error) {
	for i := range gi {
		if !isStandard(&gi[i].MessageIdentifier, MediaTraversalOID) {
			continue
		}
		prm := findParam(&gi[i], traversalParam)
		if prm == nil {
			return p, true, ErrNoParameters
		}
		if prm.ParameterValue.Choice != h245.ParameterValue_OctetString {
			return p, true, fmt.Errorf("h460: traversal parameters: %w", ErrBadValue)
		}
		if err := p.Unmarshal(prm.ParameterValue.OctetString); err != nil {
			return p, true, fmt.Errorf("h460: traversal parameters: %w", err)
		}
		return p, true, nil
	}
	return p, false, nil
}

// SetTraversal encodes p into the H.460.19 element of *gi, replacing the
// TraversalParameters of an element already there (and keeping its other
// parameters) or appending a new element. It sets *has, the
// HasGenericInformation flag of the message, when it appends.
func SetTraversal(gi *[]h245.GenericInformation, has *bool, p *TraversalParameters) error {
	b, err := p.Marshal()
	if err != nil {
		return fmt.Errorf("h460: traversal parameters: %w", err)
	}
	val := h245.ParameterValue{Choice: h245.ParameterValue_OctetString, OctetString: b}
	for i := range *gi {
		g := &(*gi)[i]
		if !isStandard(&g.MessageIdentifier, MediaTraversalOID) {
			continue
		}
		if prm := findParam(g, traversalParam); prm != nil {
			prm.ParameterValue = val
			return nil
		}
		g.MessageContent = append(g.MessageContent, h245.GenericParameter{
			ParameterIdentifier: h245.ParameterIdentifier{Choice: h245.ParameterIdentifier_Standard, Standard: traversalParam},
			ParameterValue:      val,
		})
		g.HasMessageContent = true
		return nil
	}
	*gi = append(*gi, h245.GenericInformation{
		MessageIdentifier: h245.CapabilityIdentifier{Choice: h245.CapabilityIdentifier_Standard, Standard: MediaTraversalOID},
		MessageContent: []h245.GenericParameter{{
			ParameterIdentifier: h245.ParameterIdentifier{Choice: h245.ParameterIdentifier_Standard, Standard: traversalParam},
			ParameterValue:      val,
		}},
		HasMessageContent: true,
	})
	*has = true
	return nil
}

// OLCTraversal returns the TraversalParameters of an OpenLogicalChannel.
func OLCTraversal(m *h245.OpenLogicalChannel) (TraversalParameters, bool, error) {
	return Traversal(m.GenericInformation)
}

// SetOLCTraversal puts p into the genericInformation of m.
func SetOLCTraversal(m *h245.OpenLogicalChannel, p *TraversalParameters) error {
	return SetTraversal(&m.GenericInformation, &m.HasGenericInformation, p)
}

// AckTraversal returns the TraversalParameters of an OpenLogicalChannelAck.
func AckTraversal(m *h245.OpenLogicalChannelAck) (TraversalParameters, bool, error) {
	return Traversal(m.GenericInformation)
}

// SetAckTraversal puts p into the genericInformation of m.
func SetAckTraversal(m *h245.OpenLogicalChannelAck, p *TraversalParameters) error {
	return SetTraversal(&m.GenericInformation, &m.HasGenericInformation, p)
}
