package sipedge

import (
	"net/netip"
	"strings"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/sdp"
	"github.com/portico-edge/portico/internal/store"
)

// Media is what the B2BUA needs from the media relay: a session per call
// whose streams follow the SDP of both legs. Leg 0 is the caller's side,
// leg 1 the callee's. *media.Relay satisfies it.
type Media interface {
	Allocate(sc media.SessionConfig) (media.SessionID, []media.StreamInfo, error)
	Update(id media.SessionID, streams []media.StreamConfig) ([]media.StreamInfo, error)
	Release(id media.SessionID) (media.SessionStats, error)
}

var _ Media = (*media.Relay)(nil)

// streamConfig merges what one leg signalled for a stream into the
// stream's relay configuration. source is the IP the leg's signalling
// comes from (see call.signallingSource).
func streamConfig(prev media.StreamConfig, leg int, st sdp.Stream, source netip.Addr) media.StreamConfig {
	c := prev
	c.Source[leg] = source
	c.Kind = media.Kind(st.Kind)
	if st.Content != "" && st.Kind == "video" {
		c.Kind = media.KindContent
	}
	if strings.Contains(strings.ToUpper(st.Proto), "BFCP") {
		c.Kind = media.KindBFCP
	}
	c.Transport = media.UDP
	if strings.HasPrefix(strings.ToUpper(st.Proto), "TCP") {
		c.Transport = media.TCP
	}
	c.RTCPMux = st.RTCPMux
	c.Secure = strings.Contains(strings.ToUpper(st.Proto), "SAVP") || c.Secure && leg == 1
	c.Disabled = st.Disabled()
	c.Hold = st.Hold()
	if !st.Disabled() && !st.RTP.Addr().IsUnspecified() {
		c.Remote[leg] = st.RTP
		if !st.RTCPMux {
			c.RemoteRTCP[leg] = st.RTCP
		}
	}
	return c
}

// signallingSource returns the IP address leg idx's signalling comes from
// when that leg is an outside NAT flow, the zero Addr otherwise: with NAT
// latching the relay lets media from that IP latch the leg even when the
// SDP shows a private address. Caller holds c.mu.
func (c *call) signallingSource(idx int) netip.Addr {
	for _, l := range []*leg{c.a, c.b} {
		if l == nil || l.idx != idx || l.fixed == "" {
			continue
		}
		if ap, err := netip.ParseAddrPort(l.fixed); err == nil {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}

// streamStats converts the relay's per-stream statistics into history rows:
// In counts what the caller's side sent, Out what the callee's side sent.
func streamStats(ss media.SessionStats) []store.StreamStats {
	out := make([]store.StreamStats, 0, len(ss.Streams))
	for _, st := range ss.Streams {
		l0, l1 := st.Legs[0], st.Legs[1]
		r := store.StreamStats{
			Kind:        string(st.Kind),
			PacketsIn:   l0.Packets,
			PacketsOut:  l1.Packets,
			BytesIn:     l0.Bytes,
			BytesOut:    l1.Bytes,
			PacketsLost: l0.Lost + l1.Lost,
			JitterMs:    max(l0.JitterMs, l1.JitterMs),
			RTTMs:       max(l0.RTTMs, l1.RTTMs),
		}
		out = append(out, r)
	}
	return out
}
