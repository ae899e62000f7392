package h245proxy

import (
	"testing"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h245"
)

func TestCodecName(t *testing.T) {
	h264 := &h245.VideoCapability{Choice: h245.VideoCapability_GenericVideoCapability,
		GenericVideoCapability: &h245.GenericCapability{CapabilityIdentifier: h245.CapabilityIdentifier{
			Choice: h245.CapabilityIdentifier_Standard, Standard: asn1per.OID("0.0.8.241.0.0.1")}}}
	for _, tc := range []struct {
		name string
		dt   h245.DataType
		want string
	}{
		{"g711 ulaw", h245.DataType{Choice: h245.DataType_AudioData, AudioData: &h245.AudioCapability{Choice: h245.AudioCapability_G711Ulaw64k}}, "G.711 µ-law"},
		{"h264", h245.DataType{Choice: h245.DataType_VideoData, VideoData: h264}, "H.264"},
		{"h239 content", h245.DataType{Choice: h245.DataType_VideoData, VideoData: &h245.VideoCapability{
			Choice: h245.VideoCapability_ExtendedVideoCapability, ExtendedVideoCapability: &h245.ExtendedVideoCapability{
				VideoCapability: []h245.VideoCapability{*h264}}}}, "H.264"},
		{"encrypted h261", h245.DataType{Choice: h245.DataType_H235Media, H235Media: &h245.H235Media{
			MediaType: h245.H235MediaMediaType{Choice: h245.H235MediaMediaType_VideoData,
				VideoData: &h245.VideoCapability{Choice: h245.VideoCapability_H261VideoCapability}}}}, "H.261"},
		{"unknown generic audio", h245.DataType{Choice: h245.DataType_AudioData, AudioData: &h245.AudioCapability{
			Choice: h245.AudioCapability_GenericAudioCapability, GenericAudioCapability: &h245.GenericCapability{}}}, "audio"},
		{"audio without value", h245.DataType{Choice: h245.DataType_AudioData}, ""},
		{"null data", h245.DataType{Choice: h245.DataType_NullData}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CodecName(&tc.dt); got != tc.want {
				t.Errorf("CodecName = %q, want %q", got, tc.want)
			}
		})
	}
	if got := Codecs([]string{"G.711 µ-law", "", "H.264", "G.711 µ-law"}); got != "G.711 µ-law, H.264" {
		t.Errorf("Codecs = %q", got)
	}
}
