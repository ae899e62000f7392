// Package sdp rewrites SDP session descriptions (RFC 8866, offer/answer per
// RFC 3264) for media anchoring: the connection address, origin address and
// media ports of every stream are replaced by the relay's addresses, so that
// both parties send their media to Portico and neither learns the other's
// address (topology hiding). Crypto attributes (RFC 4568 SDES) and payload
// formats pass through untouched, so SRTP is relayed end to end.
//
// The package is a pure codec built on github.com/pion/sdp/v3: no sockets, no
// logs, no goroutines. Parse never panics on input and refuses descriptions
// larger than MaxSize or with more than MaxStreams media sections.
package sdp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	psdp "github.com/pion/sdp/v3"
)

// Limits on untrusted input.
const (
	// MaxSize is the largest SDP body Parse accepts, in bytes.
	MaxSize = 64 << 10
	// MaxStreams is the largest number of m= sections Parse accepts.
	MaxStreams = 32
)

// Stream is what one m= section of a description signals.
type Stream struct {
	Kind    string         // media type: audio, video, application, ...
	Proto   string         // e.g. RTP/AVP, RTP/SAVP, UDP/BFCP
	Formats []string       // payload formats as listed on the m= line
	RTP     netip.AddrPort // where the party wants RTP; port 0 means disabled
	// RTCP is where the party wants RTCP (a=rtcp, RFC 3605, or RTP port+1);
	// equal to RTP when RTCPMux is set.
	RTCP      netip.AddrPort
	RTCPMux   bool   // a=rtcp-mux (RFC 5761)
	Direction string // sendrecv, sendonly, recvonly or inactive
	Content   string // a=content (RFC 4796), e.g. "slides"
	Codecs    []string
}

// Disabled reports whether the stream was rejected or removed (port 0).
func (s Stream) Disabled() bool { return s.RTP.Port() == 0 }

// Hold reports whether the stream puts the other side on hold
// (sendonly or inactive, or the RFC 2543 address 0.0.0.0).
func (s Stream) Hold() bool {
	return s.Direction == "sendonly" || s.Direction == "inactive" ||
		(s.RTP.Addr().IsValid() && s.RTP.Addr().IsUnspecified())
}

// Description is a parsed SDP body.
type Description struct {
	sd      psdp.SessionDescription
	Streams []Stream
}

// Parse decodes an SDP body and extracts its streams.
func Parse(b []byte) (*Description, error) {
	if len(b) == 0 {
		return nil, ErrEmpty
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("sdp: %d bytes: %w", len(b), ErrTooLarge)
	}
	d := &Description{}
	if err := d.sd.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("sdp: %w: %v", ErrMalformed, err)
	}
	if len(d.sd.MediaDescriptions) > MaxStreams {
		return nil, fmt.Errorf("sdp: %d streams: %w", len(d.sd.MediaDescriptions), ErrTooLarge)
	}
	var sessAddr netip.Addr
	if c := d.sd.ConnectionInformation; c != nil && c.Address != nil {
		sessAddr, _ = netip.ParseAddr(stripTTL(c.Address.Address))
	}
	sessDir := direction(d.sd.Attributes)
	d.Streams = make([]Stream, 0, len(d.sd.MediaDescriptions))
	for i, m := range d.sd.MediaDescriptions {
		if m == nil {
			return nil, fmt.Errorf("sdp: stream %d: %w", i, ErrMalformed)
		}
		s := Stream{
			Kind:    m.MediaName.Media,
			Proto:   strings.Join(m.MediaName.Protos, "/"),
			Formats: m.MediaName.Formats,
		}
		addr := sessAddr
		if c := m.ConnectionInformation; c != nil && c.Address != nil {
			if a, err := netip.ParseAddr(stripTTL(c.Address.Address)); err == nil {
				addr = a
			}
		}
		port := m.MediaName.Port.Value
		if port < 0 || port > 65535 {
			return nil, fmt.Errorf("sdp: stream %d: port %d: %w", i, port, ErrMalformed)
		}
		if port != 0 && !addr.IsValid() {
			return nil, fmt.Errorf("sdp: stream %d: %w", i, ErrNoAddress)
		}
		s.RTP = netip.AddrPortFrom(addr, uint16(port))
		s.Direction = direction(m.Attributes)
		if s.Direction == "" {
			s.Direction = sessDir
		}
		if s.Direction == "" {
			s.Direction = "sendrecv"
		}
		rtcpPort := port + 1
		rtcpAddr := addr
		for _, a := range m.Attributes {
			switch a.Key {
			case "rtcp-mux":
				s.RTCPMux = true
			case "content":
				s.Content = a.Value
			case "rtpmap":
				if _, codec, ok := strings.Cut(a.Value, " "); ok && len(s.Codecs) < 32 {
					s.Codecs = append(s.Codecs, codec)
				}
			case "rtcp":
				f := strings.Fields(a.Value)
				if len(f) > 0 {
					if p, err := strconv.Atoi(f[0]); err == nil && p > 0 && p < 65536 {
						rtcpPort = p
					}
				}
				if len(f) >= 4 {
					if a, err := netip.ParseAddr(f[3]); err == nil {
						rtcpAddr = a
					}
				}
			}
		}
		if s.RTCPMux {
			s.RTCP = s.RTP
		} else if port != 0 && rtcpPort < 65536 {
			s.RTCP = netip.AddrPortFrom(rtcpAddr, uint16(rtcpPort))
		}
		d.Streams = append(d.Streams, s)
	}
	return d, nil
}

// Endpoint is the relay address that replaces one stream's addresses.
type Endpoint struct {
	RTP netip.AddrPort
	// RTCP replaces the stream's RTCP address; when invalid, a=rtcp is
	// removed and RTCP is implied at RTP port + 1 (or muxed).
	RTCP netip.AddrPort
}

// Rewrite replaces the origin and connection addresses and the media ports
// of d with eps (one per stream; a disabled stream keeps port 0) and returns
// the encoded description. ICE candidates are removed, since they name the
// party's own addresses; everything else, including a=crypto and
// a=fingerprint, is kept.
func (d *Description) Rewrite(eps []Endpoint) ([]byte, error) {
	if len(eps) != len(d.sd.MediaDescriptions) {
		return nil, fmt.Errorf("sdp: %d endpoints for %d streams: %w", len(eps), len(d.sd.MediaDescriptions), ErrMismatch)
	}
	var first netip.Addr
	var txt addrText
	for i, m := range d.sd.MediaDescriptions {
		ep := eps[i]
		disabled := d.Streams[i].Disabled()
		if !disabled && !ep.RTP.IsValid() {
			return nil, fmt.Errorf("sdp: stream %d: %w", i, ErrNoAddress)
		}
		if disabled {
			m.MediaName.Port = psdp.RangedPort{Value: 0}
			if ep.RTP.IsValid() {
				setConn(&m.ConnectionInformation, ep.RTP.Addr(), &txt)
			}
			m.Attributes = filterAttrs(m.Attributes, ep, false)
			continue
		}
		if !first.IsValid() {
			first = ep.RTP.Addr()
		}
		m.MediaName.Port = psdp.RangedPort{Value: int(ep.RTP.Port())}
		hold := d.Streams[i].RTP.Addr().IsUnspecified()
		addr := ep.RTP.Addr()
		if hold {
			// Keep the RFC 2543 hold signal, without the relay address.
			if addr.Is4() {
				addr = netip.IPv4Unspecified()
			} else {
				addr = netip.IPv6Unspecified()
			}
		}
		setConn(&m.ConnectionInformation, addr, &txt)
		m.Attributes = filterAttrs(m.Attributes, ep, true)
	}
	if !first.IsValid() {
		for _, ep := range eps {
			if ep.RTP.IsValid() {
				first = ep.RTP.Addr()
				break
			}
		}
	}
	if first.IsValid() {
		d.sd.Origin.UnicastAddress = txt.of(first)
		d.sd.Origin.AddressType = addrType(first)
		if d.sd.ConnectionInformation != nil {
			setConn(&d.sd.ConnectionInformation, first, &txt)
		}
	} else {
		d.sd.Origin.UnicastAddress = "0.0.0.0"
		d.sd.Origin.AddressType = "IP4"
		if d.sd.ConnectionInformation != nil {
			setConn(&d.sd.ConnectionInformation, netip.IPv4Unspecified(), &txt)
		}
	}
	d.sd.Attributes = filterSessionAttrs(d.sd.Attributes)
	d.sd.Origin.SessionVersion++
	return d.sd.Marshal()
}

// Bump increments the origin's session version (RFC 3264 section 8): a
// B2BUA that sends a changed description on a leg must raise it.
func (d *Description) Bump() { d.sd.Origin.SessionVersion++ }

// setConn makes *c a connection line for address a. The parsed line's
// structs belong to the Description and are reused; a TTL or range of
// the original goes.
func setConn(c **psdp.ConnectionInformation, a netip.Addr, txt *addrText) {
	ci := *c
	if ci == nil {
		ci = &psdp.ConnectionInformation{}
		*c = ci
	}
	ci.NetworkType, ci.AddressType = "IN", addrType(a)
	if ci.Address == nil {
		ci.Address = &psdp.Address{}
	}
	*ci.Address = psdp.Address{Address: txt.of(a)}
}

// addrText formats addresses for one Rewrite: its streams and the
// session mostly share one relay address, whose text is then made once.
type addrText struct {
	a netip.Addr
	s string
}

func (t *addrText) of(a netip.Addr) string {
	if t.s == "" || a != t.a {
		t.a, t.s = a, a.String()
	}
	return t.s
}

func addrType(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return "IP4"
	}
	return "IP6"
}

func filterAttrs(in []psdp.Attribute, ep Endpoint, enabled bool) []psdp.Attribute {
	out := in[:0]
	for _, a := range in {
		switch a.Key {
		case "candidate", "remote-candidates", "ice-ufrag", "ice-pwd", "ice-options", "end-of-candidates", "ice-lite":
			continue
		case "rtcp":
			if !enabled || !ep.RTCP.IsValid() {
				continue
			}
			a.Value = fmt.Sprintf("%d IN %s %s", ep.RTCP.Port(), addrType(ep.RTCP.Addr()), ep.RTCP.Addr())
		}
		out = append(out, a)
	}
	return out
}

func filterSessionAttrs(in []psdp.Attribute) []psdp.Attribute {
	out := in[:0]
	for _, a := range in {
		switch a.Key {
		case "candidate", "remote-candidates", "end-of-candidates", "ice-ufrag", "ice-pwd", "ice-options", "ice-lite":
			continue
		}
		out = append(out, a)
	}
	return out
}

func direction(attrs []psdp.Attribute) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return ""
}

func stripTTL(s string) string {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i]
	}
	return s
}
