package callsig

import (
	"fmt"
	"net/netip"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
)

// fields points at what a UUIE body carries that the proxy rewrites.
type fields struct {
	h245Address *(*h225.TransportAddress)
	srcSignal   *(*h225.TransportAddress)
	dstSignal   *(*h225.TransportAddress)
	altAddress  *(*h225.TransportAddress)
	// multipleCalls and maintainConnection: Portico carries one call per
	// connection and says so (H.225.0 §7.3), whatever the endpoint offered.
	multipleCalls, maintain *bool
	fastStart               *[][]byte
	featureSet              **h225.FeatureSet
	parallel                *[][]byte
	srcAliases              []h225.AliasAddress
}

func bodyFields(b *h225.H323UUPDUH323MessageBody) (f fields) {
	switch {
	case b.Setup != nil:
		s := b.Setup
		f = fields{h245Address: &s.H245Address, srcSignal: &s.SourceCallSignalAddress, dstSignal: &s.DestCallSignalAddress,
			fastStart: &s.FastStart, parallel: &s.ParallelH245Control, srcAliases: s.SourceAddress,
			multipleCalls: &s.MultipleCalls, maintain: &s.MaintainConnection}
	case b.CallProceeding != nil:
		f = fields{featureSet: &b.CallProceeding.FeatureSet, h245Address: &b.CallProceeding.H245Address, fastStart: &b.CallProceeding.FastStart,
			multipleCalls: &b.CallProceeding.MultipleCalls, maintain: &b.CallProceeding.MaintainConnection}
	case b.Alerting != nil:
		f = fields{featureSet: &b.Alerting.FeatureSet, h245Address: &b.Alerting.H245Address, fastStart: &b.Alerting.FastStart,
			multipleCalls: &b.Alerting.MultipleCalls, maintain: &b.Alerting.MaintainConnection}
	case b.Connect != nil:
		f = fields{featureSet: &b.Connect.FeatureSet, h245Address: &b.Connect.H245Address, fastStart: &b.Connect.FastStart,
			multipleCalls: &b.Connect.MultipleCalls, maintain: &b.Connect.MaintainConnection}
	case b.Progress != nil:
		f = fields{h245Address: &b.Progress.H245Address, fastStart: &b.Progress.FastStart,
			multipleCalls: &b.Progress.MultipleCalls, maintain: &b.Progress.MaintainConnection}
	case b.Facility != nil:
		f = fields{h245Address: &b.Facility.H245Address, fastStart: &b.Facility.FastStart, altAddress: &b.Facility.AlternativeAddress,
			multipleCalls: &b.Facility.MultipleCalls, maintain: &b.Facility.MaintainConnection}
	case b.Information != nil:
		f = fields{fastStart: &b.Information.FastStart}
	}
	return f
}

// rewrite returns the Q.931 message m, sent by side from, as the other
// side must receive it, in its TPKT frame: every transport address in its
// UUIE names Portico there, fastStart and tunnelled H.245 carry relay
// addresses. A message without user-user information passes unchanged.
func (c *call) rewrite(from Side, m *q931.Message, ui *h225.H323UserInformation, raw []byte) ([]byte, error) {
	if ui == nil {
		return h245proxy.AppendFrame(make([]byte, 0, len(raw)+4), raw), nil
	}
	to := from.Other()
	pdu := &ui.H323UuPdu
	f := bodyFields(&pdu.H323MessageBody)
	var err error
	if f.h245Address != nil && *f.h245Address != nil {
		ap, aerr := ras.AddrPort(*f.h245Address)
		if aerr != nil {
			*f.h245Address = nil // not IP: the far end cannot use it anyway
		} else {
			local, berr := c.bridge(from, ap)
			if berr != nil {
				return nil, berr
			}
			t := ras.Transport(local)
			*f.h245Address = &t
		}
	}
	for _, flag := range []*bool{f.multipleCalls, f.maintain} {
		if flag != nil {
			*flag = false
		}
	}
	if f.srcSignal != nil && *f.srcSignal != nil {
		t := ras.Transport(c.portico(to))
		*f.srcSignal = &t
	}
	if f.dstSignal != nil && *f.dstSignal != nil {
		t := ras.Transport(c.legs[to].remote)
		*f.dstSignal = &t
	}
	if f.altAddress != nil && *f.altAddress != nil && from == Inside {
		*f.altAddress = nil
	}
	for i := range f.srcAliases {
		if f.srcAliases[i].Choice == h225.AliasAddress_TransportID {
			t := ras.Transport(c.portico(to))
			f.srcAliases[i].TransportID = &t
		}
	}
	if s := pdu.H323MessageBody.Setup; s != nil {
		s.NeededFeatures, s.HasNeededFeatures = withoutMediaTraversal(s.NeededFeatures, s.HasNeededFeatures)
		s.DesiredFeatures, s.HasDesiredFeatures = withoutMediaTraversal(s.DesiredFeatures, s.HasDesiredFeatures)
		s.SupportedFeatures, s.HasSupportedFeatures = withoutMediaTraversal(s.SupportedFeatures, s.HasSupportedFeatures)
		if to == Outside && c.h46019 {
			s.SupportedFeatures, s.HasSupportedFeatures = append(s.SupportedFeatures, mediaTraversalServer()), true
		}
		if from == Outside && c.dest != "" {
			pinDestination(m, s, c.dest)
		}
		if s.HasHopCount && s.HopCount > 1 {
			// Portico counts as a hop, as gatekeepers do with the Setup's
			// hopCount; newCall refused the Setup that arrived at 1.
			s.HopCount--
		}
	}
	if f.featureSet != nil {
		if from == Outside && c.offerMux && c.h46019 && *f.featureSet != nil {
			// Only the outside's messages touch offerMux (one goroutine).
			if ras.Param(ras.FeatureIn(*f.featureSet, ras.H46019), ras.H46019TransmitMultiplexed) != nil {
				c.offerMux = false
				c.media.EnableMultiplex()
			}
		}
		c.rewriteFeatureSet(to, f.featureSet)
	}
	if f.fastStart != nil && len(*f.fastStart) > 0 {
		if *f.fastStart, err = c.media.RewriteFastStart(from, *f.fastStart); err != nil {
			return nil, err
		}
	}
	for _, list := range []*[][]byte{&pdu.H245Control, f.parallel} {
		if list == nil {
			continue
		}
		for i, p := range *list {
			q, err := c.media.RewritePDU(from, p)
			if err != nil {
				return nil, err
			}
			(*list)[i] = q
		}
	}
	// The user-user element and then the frame are each encoded into one
	// buffer of about their final size: the rewritten UUIE differs from
	// the one received by a few addresses.
	old, _ := m.Get(q931.IEUserUser)
	uu := make([]byte, 1, len(old)+64)
	uu[0] = q931.UserUserX208
	if uu, err = ui.Append(uu); err != nil {
		return nil, fmt.Errorf("%w: re-encode: %v", ErrMalformed, err)
	}
	m.Set(q931.IEUserUser, uu)
	out, err := m.Append(make([]byte, 4, 4+len(raw)-len(old)+len(uu)+8))
	if err != nil {
		return nil, err
	}
	n := len(out)
	out[0], out[1], out[2], out[3] = 3, 0, byte(n>>8), byte(n)
	return out, nil
}

// pinDestination makes a Setup name dest alone: destinationAddress is the
// dialled alias equal to dest (its kind kept) or dest as a new alias, and
// the called party number is dest when it is digits, else left out.
func pinDestination(m *q931.Message, s *h225.SetupUUIE, dest string) {
	a := ras.Alias(dest)
	for i := range s.DestinationAddress {
		if v, ok := ras.AliasString(&s.DestinationAddress[i]); ok && v == dest {
			a = s.DestinationAddress[i]
			break
		}
	}
	s.DestinationAddress, s.HasDestinationAddress = []h225.AliasAddress{a}, true
	if ras.Alias(dest).Choice != h225.AliasAddress_DialledDigits {
		m.Remove(q931.IECalledPartyNumber)
		return
	}
	n, err := m.Number(q931.IECalledPartyNumber)
	if err != nil {
		n = q931.Number{Type: 0, Plan: 1} // unknown type, E.164 plan
	}
	n.Digits = dest
	m.SetNumber(q931.IECalledPartyNumber, n)
}

// portico returns Portico's call-signalling address on side s.
func (c *call) portico(s Side) netip.AddrPort {
	return netip.AddrPortFrom(c.srv.cfg.Sides[s].Advertise, c.legs[s].local.Port())
}

// mediaTraversalServer is the H.460.19 feature Portico announces to an
// outside endpoint whose media traversal server it is:
// mediaTraversalServer and supportTransmitMultiplexedMedia.
func mediaTraversalServer() h225.FeatureDescriptor {
	return ras.Feature(ras.H46019, ras.Flag(ras.H46019TraversalServer), ras.Flag(ras.H46019TransmitMultiplexed))
}

// offersMediaTraversal reports whether a Setup offers H.460.19 and
// whether with supportTransmitMultiplexedMedia.
func offersMediaTraversal(s *h225.SetupUUIE) (offered, multiplex bool) {
	for _, l := range [][]h225.FeatureDescriptor{s.NeededFeatures, s.DesiredFeatures, s.SupportedFeatures} {
		if f := ras.Generic(l, ras.H46019); f != nil {
			return true, ras.Param(f, ras.H46019TransmitMultiplexed) != nil
		}
	}
	return false, false
}

// withoutMediaTraversal drops H.460.19 from a feature list: it concerns
// the hop to Portico, never the other side.
func withoutMediaTraversal(l []h225.FeatureDescriptor, has bool) ([]h225.FeatureDescriptor, bool) {
	if ras.Generic(l, ras.H46019) == nil {
		return l, has
	}
	out := make([]h225.FeatureDescriptor, 0, len(l))
	for _, g := range l {
		if g.Id.Choice != h225.GenericIdentifier_Standard || g.Id.Standard != ras.H46019 {
			out = append(out, g)
		}
	}
	return out, len(out) > 0
}

// rewriteFeatureSet drops H.460.19 from the featureSet of a message sent
// to side to and, toward an outside endpoint Portico is the traversal
// server of, announces it there.
func (c *call) rewriteFeatureSet(to Side, fs **h225.FeatureSet) {
	if *fs != nil {
		f := *fs
		f.NeededFeatures, f.HasNeededFeatures = withoutMediaTraversal(f.NeededFeatures, f.HasNeededFeatures)
		f.DesiredFeatures, f.HasDesiredFeatures = withoutMediaTraversal(f.DesiredFeatures, f.HasDesiredFeatures)
		f.SupportedFeatures, f.HasSupportedFeatures = withoutMediaTraversal(f.SupportedFeatures, f.HasSupportedFeatures)
	}
	if to != Outside || !c.h46019 {
		return
	}
	if *fs == nil {
		*fs = &h225.FeatureSet{}
	}
	(*fs).SupportedFeatures, (*fs).HasSupportedFeatures = append((*fs).SupportedFeatures, mediaTraversalServer()), true
}
