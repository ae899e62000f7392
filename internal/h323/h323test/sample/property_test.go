package sample

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/ras"
)

type perValue interface {
	Encode(*asn1per.Encoder) error
	Decode(*asn1per.Decoder) error
}

// roundTrip encodes v, decodes into a fresh value of the same type, and
// requires equality and a stable re-encoding.
func roundTrip(t *rapid.T, v perValue) {
	var e asn1per.Encoder
	if err := v.Encode(&e); err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	b := append([]byte(nil), e.Complete()...)
	w := reflect.New(reflect.TypeOf(v).Elem()).Interface().(perValue)
	if err := w.Decode(asn1per.NewDecoder(b)); err != nil {
		t.Fatalf("decode %T: %v\n% x", v, err, b)
	}
	var e2 asn1per.Encoder
	if err := w.Encode(&e2); err != nil || !bytes.Equal(e2.Complete(), b) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	// normalize edits shared pointees, so it runs last
	if !reflect.DeepEqual(normalize(v), normalize(w)) {
		t.Fatalf("%T differs after round trip\n in %+v\nout %+v", v, v, w)
	}
}

// normalize maps empty slices to nil and drops the received extension
// bitmap length (encoding metadata, asn1per.Ext.N) so that a value built
// in Go compares equal to its decoding.
func normalize(v any) any {
	rv := reflect.ValueOf(v)
	c := reflect.New(rv.Type().Elem())
	c.Elem().Set(rv.Elem())
	norm(c.Elem())
	return c.Interface()
}

func norm(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			norm(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(asn1per.Ext{}) {
			v.FieldByName("N").SetInt(0)
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).CanSet() {
				norm(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		for i := 0; i < v.Len(); i++ {
			norm(v.Index(i))
		}
	}
}

func genAddrPort(t *rapid.T, label string) netip.AddrPort {
	port := uint16(rapid.IntRange(0, 65535).Draw(t, label+"port"))
	if rapid.Bool().Draw(t, label+"v6") {
		b := rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, label+"ip6")
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b)), port)
	}
	b := rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, label+"ip4")
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b)), port)
}

func genAlias(t *rapid.T, label string) h225.AliasAddress {
	switch rapid.IntRange(0, 3).Draw(t, label+"kind") {
	case 0:
		return ras.E164(rapid.StringMatching(`[0-9#*,]{1,128}`).Draw(t, label+"digits"))
	case 1:
		return h225.AliasAddress{Choice: h225.AliasAddress_H323ID,
			H323ID: rapid.SliceOfN(rapid.Uint16(), 1, 256).Draw(t, label+"bmp")}
	case 2:
		return ras.URL(rapid.StringMatching(`[ -~]{1,512}`).Draw(t, label+"url"))
	default:
		return h225.AliasAddress{Choice: h225.AliasAddress_EmailID,
			EmailID: rapid.StringMatching(`[a-z0-9.@]{1,512}`).Draw(t, label+"email")}
	}
}

func TestPropertyTransportAddress(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ta := ras.Transport(genAddrPort(t, ""))
		roundTrip(t, &ta)
		ap, err := ras.AddrPort(&ta)
		if err != nil || ras.Transport(ap).Choice != ta.Choice {
			t.Fatalf("AddrPort: %v", err)
		}
	})
}

func TestPropertyAliasAddress(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := genAlias(t, "")
		roundTrip(t, &a)
	})
}

func TestPropertyRRQ(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := ras.Endpoint{
			RAS: genAddrPort(t, "ras"), CallSignal: genAddrPort(t, "cs"),
			Terminal:   rapid.Bool().Draw(t, "terminal"),
			KeepAlive:  rapid.Bool().Draw(t, "keepAlive"),
			TimeToLive: int64(rapid.IntRange(0, 4294967295).Draw(t, "ttl")),
			Gatekeeper: rapid.StringMatching(`[a-z]{0,20}`).Draw(t, "gk"),
		}
		n := rapid.IntRange(0, 4).Draw(t, "aliases")
		for i := 0; i < n; i++ {
			e.Aliases = append(e.Aliases, genAlias(t, "a"))
		}
		m := ras.RRQ(rapid.IntRange(1, 65535).Draw(t, "seq"), e)
		roundTrip(t, m)
	})
}

func TestPropertyOpenLogicalChannel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		olc := OLC()
		olc.ForwardLogicalChannelNumber = h245.LogicalChannelNumber(rapid.IntRange(1, 65535).Draw(t, "lcn"))
		p := olc.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters
		p.SessionID = int64(rapid.IntRange(0, 255).Draw(t, "session"))
		p.MediaControlChannel.UnicastAddress.IPAddress.TsapIdentifier = int64(rapid.IntRange(0, 65535).Draw(t, "port"))
		if rapid.Bool().Draw(t, "dynamic") {
			p.DynamicRTPPayloadType, p.HasDynamicRTPPayloadType = int64(rapid.IntRange(96, 127).Draw(t, "pt")), true
		}
		olc.ForwardLogicalChannelParameters.DataType.AudioData.G711Alaw64k = int64(rapid.IntRange(1, 256).Draw(t, "frames"))
		roundTrip(t, olc)
	})
}

// TestPropertyDecodedValues uses the decoder as a generator: random bits
// that decode as a type give a random valid value of it, which must then
// survive encode → decode unchanged.
func TestPropertyDecodedValues(t *testing.T) {
	types := []func() perValue{
		func() perValue { return new(h225.TransportAddress) },
		func() perValue { return new(h225.AliasAddress) },
		func() perValue { return new(h225.EndpointType) },
		func() perValue { return new(h225.VendorIdentifier) },
		func() perValue { return new(h225.GenericData) },
		func() perValue { return new(h225.FeatureSet) },
		func() perValue { return new(h225.CallIdentifier) },
		func() perValue { return new(h225.H221NonStandard) },
		func() perValue { return new(h225.RasMessage) },
		func() perValue { return new(h245.UnicastAddress) },
		func() perValue { return new(h245.DataType) },
		func() perValue { return new(h245.AudioCapability) },
		func() perValue { return new(h245.H2250LogicalChannelParameters) },
		func() perValue { return new(h245.MultimediaSystemControlMessage) },
	}
	for _, newV := range types {
		name := reflect.TypeOf(newV()).Elem().String()
		t.Run(name, func(t *testing.T) {
			decoded := 0
			rapid.Check(t, func(rt *rapid.T) {
				b := rapid.SliceOfN(rapid.Byte(), 32, 400).Draw(rt, "bits") // short inputs decode as little
				v := newV()
				if v.Decode(asn1per.NewDecoder(b)) != nil {
					return
				}
				decoded++
				roundTrip(rt, v)
			})
			if decoded == 0 {
				t.Fatalf("no random input decoded as %s", name)
			}
		})
	}
}
