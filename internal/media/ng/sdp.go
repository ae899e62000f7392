package ng

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/portico-edge/portico/internal/media"
)

// sdpDoc is an SDP body split into lines (RFC 8866 section 5), with the
// index of each m= section. Only what relaying needs is interpreted; every
// other line passes through unchanged.
type sdpDoc struct {
	lines []string
	media []sdpMedia
}

type sdpMedia struct {
	start, end int // line range [start, end) including the m= line
	kind       string
	port       int
	proto      string
	conn       netip.Addr // media-level c= or session-level
	rtcpPort   int
	rtcpAddr   netip.Addr
	mux        bool
	direction  string
	setup      string
	content    string
	h224       bool
}

var errSDP = errors.New("ng: malformed SDP")

func parseSDP(s string) (*sdpDoc, error) {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil, fmt.Errorf("%w: empty", errSDP)
	}
	d := &sdpDoc{lines: strings.Split(s, "\n")}
	var sessionConn netip.Addr
	cur := -1
	for i, l := range d.lines {
		if len(l) < 2 || l[1] != '=' {
			return nil, fmt.Errorf("%w: line %d %q", errSDP, i+1, l)
		}
		switch {
		case strings.HasPrefix(l, "m="):
			f := strings.Fields(l[2:])
			if len(f) < 3 {
				return nil, fmt.Errorf("%w: m= line %q", errSDP, l)
			}
			portStr, _, _ := strings.Cut(f[1], "/")
			port, err := strconv.Atoi(portStr)
			if err != nil || port < 0 || port > 65535 {
				return nil, fmt.Errorf("%w: m= port %q", errSDP, f[1])
			}
			if cur >= 0 {
				d.media[cur].end = i
			}
			d.media = append(d.media, sdpMedia{start: i, kind: f[0], port: port, proto: f[2], conn: sessionConn})
			cur = len(d.media) - 1
		case strings.HasPrefix(l, "c="):
			f := strings.Fields(l[2:])
			if len(f) < 3 {
				return nil, fmt.Errorf("%w: c= line %q", errSDP, l)
			}
			host, _, _ := strings.Cut(f[2], "/")
			a, err := netip.ParseAddr(host)
			if err != nil {
				return nil, fmt.Errorf("%w: c= address %q", errSDP, f[2])
			}
			if cur < 0 {
				sessionConn = a
			} else {
				d.media[cur].conn = a
			}
		case strings.HasPrefix(l, "a=") && cur >= 0:
			m := &d.media[cur]
			name, val, _ := strings.Cut(l[2:], ":")
			switch name {
			case "rtcp":
				f := strings.Fields(val)
				if len(f) > 0 {
					m.rtcpPort, _ = strconv.Atoi(f[0])
				}
				if len(f) >= 4 {
					m.rtcpAddr, _ = netip.ParseAddr(f[3])
				}
			case "rtcp-mux":
				m.mux = true
			case "sendrecv", "sendonly", "recvonly", "inactive":
				m.direction = name
			case "setup":
				m.setup = strings.TrimSpace(val)
			case "content":
				m.content = strings.TrimSpace(val)
			case "rtpmap":
				if strings.Contains(strings.ToUpper(val), "H224") {
					m.h224 = true
				}
			}
		}
	}
	if cur >= 0 {
		d.media[cur].end = len(d.lines)
	}
	return d, nil
}

// streams turns the m= sections into stream descriptions for one leg.
func (d *sdpDoc) streams(leg int, prev []media.StreamConfig) ([]media.StreamConfig, error) {
	out := make([]media.StreamConfig, len(d.media))
	for i, m := range d.media {
		var c media.StreamConfig
		if i < len(prev) {
			c = prev[i]
		}
		proto := strings.ToUpper(m.proto)
		switch {
		case strings.Contains(proto, "BFCP"):
			c.Kind = media.KindBFCP
		case m.kind == "audio":
			c.Kind = media.KindAudio
		case m.kind == "video" && m.content != "" && m.content != "main":
			c.Kind = media.KindContent
		case m.kind == "video":
			c.Kind = media.KindVideo
		case m.kind == "application" && m.h224:
			c.Kind = media.KindFECC
		default:
			c.Kind = media.KindApplication
		}
		c.Transport = media.UDP
		if strings.HasPrefix(proto, "TCP") {
			c.Transport = media.TCP
		}
		c.Secure = strings.Contains(proto, "SAVP")
		c.RTCPMux = false // both sockets always: forwarding is mux-agnostic
		if m.port == 0 {
			c.Disabled = true
			out[i] = c
			continue
		}
		c.Disabled = false
		if !m.conn.IsValid() {
			return nil, fmt.Errorf("%w: m= section %d has no c= address", errSDP, i)
		}
		held := m.conn.IsUnspecified() || m.direction == "inactive" || m.direction == "sendonly" || m.direction == "recvonly"
		c.Hold = held
		if !m.conn.IsUnspecified() {
			c.Remote[leg] = netip.AddrPortFrom(m.conn, uint16(m.port))
			c.RemoteRTCP[leg] = netip.AddrPort{}
			if m.mux {
				c.RemoteRTCP[leg] = c.Remote[leg]
			} else if m.rtcpPort > 0 {
				a := m.conn
				if m.rtcpAddr.IsValid() {
					a = m.rtcpAddr
				}
				c.RemoteRTCP[leg] = netip.AddrPortFrom(a, uint16(m.rtcpPort))
			}
		}
		if c.Transport == media.TCP {
			// RFC 4145: the relay takes the opposite role of the endpoint;
			// toward an actpass (or silent) endpoint it listens.
			if m.setup == "passive" {
				c.Role[leg] = media.TCPActive
			} else {
				c.Role[leg] = media.TCPPassive
			}
		}
		out[i] = c
	}
	return out, nil
}

// rewrite returns the SDP with every address replaced by the relay's
// addresses on leg, the way rtpengine does for RTP/AVP and RTP/SAVP: c= and
// m= ports, a=rtcp written (or added), ICE attributes removed, the rest kept.
func (d *sdpDoc) rewrite(infos []media.StreamInfo, cfgs []media.StreamConfig, leg int, replaceOrigin bool) string {
	var b strings.Builder
	addrOf := func(a netip.Addr) string {
		if a.Is4() {
			return "IN IP4 " + a.String()
		}
		return "IN IP6 " + a.String()
	}
	var first netip.Addr
	for _, in := range infos {
		if in.Local[leg].IsValid() {
			first = in.Local[leg].Addr()
			break
		}
	}
	mi := -1
	for i, l := range d.lines {
		if mi+1 < len(d.media) && d.media[mi+1].start == i {
			mi++
		}
		var in media.StreamInfo
		var cfg media.StreamConfig
		skip := false
		if mi >= 0 && mi < len(infos) {
			in, cfg = infos[mi], cfgs[mi]
		}
		switch {
		case strings.HasPrefix(l, "o=") && replaceOrigin && first.IsValid():
			f := strings.Fields(l)
			if len(f) >= 6 {
				f[4], f[5] = strings.Fields(addrOf(first))[1], first.String()
				l = strings.Join(f, " ")
			}
		case strings.HasPrefix(l, "c="):
			a := first
			if mi >= 0 && in.Local[leg].IsValid() {
				a = in.Local[leg].Addr()
			}
			if a.IsValid() && !(mi >= 0 && d.media[mi].conn.IsUnspecified()) {
				l = "c=" + addrOf(a)
			}
		case strings.HasPrefix(l, "m=") && mi >= 0:
			if in.Local[leg].IsValid() && !in.Disabled {
				f := strings.Fields(l)
				port := in.Local[leg].Port()
				if cfg.Transport == media.TCP && cfg.Role[leg] == media.TCPActive {
					port = 9 // RFC 4145 section 4: an active endpoint's port
				}
				f[1] = strconv.Itoa(int(port))
				l = strings.Join(f, " ")
			}
		case strings.HasPrefix(l, "a=") && mi < 0:
			// ICE attributes may stand at session level too (RFC 8839).
			name, _, _ := strings.Cut(l[2:], ":")
			skip = iceAttr(name)
		case strings.HasPrefix(l, "a=") && mi >= 0:
			name, _, _ := strings.Cut(l[2:], ":")
			switch {
			case name == "rtcp" || iceAttr(name):
				skip = true
			case name == "setup":
				if cfg.Transport == media.TCP {
					if cfg.Role[leg] == media.TCPActive {
						l = "a=setup:active"
					} else {
						l = "a=setup:passive"
					}
				}
			}
		}
		if !skip {
			b.WriteString(l)
			b.WriteString("\r\n")
		}
		// a=rtcp goes right after the m= section's c= line or m= line: write it
		// at the end of the section instead (order of attributes is free).
		if mi >= 0 && i == d.media[mi].end-1 && in.Local[leg].IsValid() && !in.Disabled && cfg.Transport == media.UDP {
			port := in.LocalRTCP[leg].Port()
			if d.media[mi].mux {
				port = in.Local[leg].Port() // RFC 5761 section 5.1.3
			}
			b.WriteString("a=rtcp:" + strconv.Itoa(int(port)) + "\r\n")
		}
	}
	return b.String()
}

// iceAttr reports whether an attribute belongs to ICE (RFC 8839 section 5).
func iceAttr(name string) bool {
	switch name {
	case "candidate", "ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "ice-mismatch", "ice-pacing", "end-of-candidates", "remote-candidates":
		return true
	}
	return false
}
