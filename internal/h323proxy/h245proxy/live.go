package h245proxy

import (
	"bytes"
	"slices"
	"strings"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/media"
)

// liveStats is the part of the relay that tells a session's statistics
// while it runs; *media.Relay has it.
type liveStats interface {
	Session(id media.SessionID) (media.SessionStats, error)
}

var _ liveStats = (*media.Relay)(nil)

// Live returns the relay's statistics of the call's streams now, and the
// codec of each stream (index-aligned with the statistics; "" when
// unknown). Both are empty before the first channel is allocated, after
// Close, and when the Media cannot tell statistics.
func (s *Session) Live() ([]media.StreamStats, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls, ok := s.media.(liveStats)
	if !ok || !s.allocated || s.closed {
		return nil, nil
	}
	st, err := ls.Session(s.id)
	if err != nil {
		return nil, nil
	}
	byStream := map[int]string{}
	for sid, name := range s.codecs {
		if i, ok := s.bySession[sid]; ok {
			byStream[i] = name
		}
	}
	codecs := make([]string, len(st.Streams))
	for i, ss := range st.Streams {
		codecs[i] = byStream[ss.Index]
	}
	return st.Streams, codecs
}

// noteCodec records the codec of the H.245 session sessionID from the
// dataType of an OpenLogicalChannel: the last one seen wins (in a
// fastStart Setup the caller's proposals, then the callee's choice).
// Caller holds s.mu.
func (s *Session) noteCodec(sessionID int64, dt *h245.DataType) {
	if dt == nil || sessionID == 0 {
		return
	}
	if name := CodecName(dt); name != "" {
		if s.codecs == nil {
			s.codecs = map[int64]string{}
		}
		s.codecs[sessionID] = name
	}
}

// Standard capability identifiers of generic audio and video codecs.
var genericCodecs = []struct {
	oid  asn1per.ObjectIdentifier
	name string
}{
	{asn1per.OID("0.0.8.241.0.0.1"), "H.264"},
	{asn1per.OID("0.0.7.7221.1.0"), "G.722.1"},
	{asn1per.OID("0.0.7.7221.1.1.0"), "G.722.1 Annex C"},
	{asn1per.OID("0.0.7.719.1"), "G.719"},
	{asn1per.OID("0.0.8.245.1.1.1"), "MPEG-4 AAC"},
	{asn1per.OID("0.0.7.7222.1.0"), "G.722.2"},
}

var audioCodecs = map[int]string{
	h245.AudioCapability_G711Alaw64k: "G.711 A-law", h245.AudioCapability_G711Alaw56k: "G.711 A-law",
	h245.AudioCapability_G711Ulaw64k: "G.711 µ-law", h245.AudioCapability_G711Ulaw56k: "G.711 µ-law",
	h245.AudioCapability_G72264k: "G.722", h245.AudioCapability_G72256k: "G.722", h245.AudioCapability_G72248k: "G.722",
	h245.AudioCapability_G7231: "G.723.1", h245.AudioCapability_G7231AnnexCCapability: "G.723.1",
	h245.AudioCapability_G728: "G.728", h245.AudioCapability_G729: "G.729", h245.AudioCapability_G729AnnexA: "G.729",
	h245.AudioCapability_G729wAnnexB: "G.729", h245.AudioCapability_G729AnnexAwAnnexB: "G.729",
	h245.AudioCapability_G729Extensions: "G.729", h245.AudioCapability_GsmFullRate: "GSM",
	h245.AudioCapability_GsmHalfRate: "GSM", h245.AudioCapability_GsmEnhancedFullRate: "GSM-EFR",
	h245.AudioCapability_Is11172AudioCapability: "MPEG-1 audio", h245.AudioCapability_Is13818AudioCapability: "MPEG-2 audio",
	h245.AudioCapability_AudioTelephonyEvent: "telephone-event",
}

var videoCodecs = map[int]string{
	h245.VideoCapability_H261VideoCapability: "H.261", h245.VideoCapability_H262VideoCapability: "H.262",
	h245.VideoCapability_H263VideoCapability: "H.263", h245.VideoCapability_Is11172VideoCapability: "MPEG-1 video",
}

// CodecName names the codec of an OpenLogicalChannel's dataType, such as
// "G.711 µ-law" or "H.264"; "" when it carries none (null data). Media
// under H.235 encryption is named by the codec inside it.
func CodecName(dt *h245.DataType) string {
	switch dt.Choice {
	case h245.DataType_AudioData:
		if dt.AudioData != nil {
			return audioName(dt.AudioData)
		}
	case h245.DataType_VideoData:
		if dt.VideoData != nil {
			return videoName(dt.VideoData)
		}
	case h245.DataType_H235Media:
		if m := dt.H235Media; m != nil {
			switch m.MediaType.Choice {
			case h245.H235MediaMediaType_AudioData:
				if m.MediaType.AudioData != nil {
					return audioName(m.MediaType.AudioData)
				}
			case h245.H235MediaMediaType_VideoData:
				if m.MediaType.VideoData != nil {
					return videoName(m.MediaType.VideoData)
				}
			}
		}
	case h245.DataType_Data:
		if dt.Data != nil {
			return "data"
		}
	}
	return ""
}

func audioName(a *h245.AudioCapability) string {
	if n, ok := audioCodecs[a.Choice]; ok {
		return n
	}
	if a.Choice == h245.AudioCapability_GenericAudioCapability && a.GenericAudioCapability != nil {
		return genericName(&a.GenericAudioCapability.CapabilityIdentifier, "audio")
	}
	return "audio"
}

func videoName(v *h245.VideoCapability) string {
	if n, ok := videoCodecs[v.Choice]; ok {
		return n
	}
	switch {
	case v.Choice == h245.VideoCapability_GenericVideoCapability && v.GenericVideoCapability != nil:
		return genericName(&v.GenericVideoCapability.CapabilityIdentifier, "video")
	case v.Choice == h245.VideoCapability_ExtendedVideoCapability && v.ExtendedVideoCapability != nil:
		// H.239 content: the codec is the first of its video capabilities.
		for i := range v.ExtendedVideoCapability.VideoCapability {
			if n := videoName(&v.ExtendedVideoCapability.VideoCapability[i]); n != "video" {
				return n
			}
		}
	}
	return "video"
}

func genericName(id *h245.CapabilityIdentifier, kind string) string {
	if id.Choice != h245.CapabilityIdentifier_Standard {
		return kind
	}
	for _, g := range genericCodecs {
		if bytes.Equal(id.Standard, g.oid) {
			return g.name
		}
	}
	return kind
}

// Codecs joins codec names for display, each once, in order.
func Codecs(names []string) string {
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}
