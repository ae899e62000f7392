package media

import (
	"fmt"
	"net/netip"
	"time"
)

// SessionID identifies a relay session for its whole life.
type SessionID uint64

func (id SessionID) String() string { return fmt.Sprintf("m%d", uint64(id)) }

// Kind is what a stream carries (the SDP media type, RFC 4566 section 5.14,
// with content distinguished per RFC 4796).
type Kind string

// Stream kinds.
const (
	KindAudio       Kind = "audio"
	KindVideo       Kind = "video"
	KindContent     Kind = "content" // second video stream (a=content:slides)
	KindFECC        Kind = "fecc"    // far-end camera control (H.224 over RTP)
	KindBFCP        Kind = "bfcp"    // floor control (RFC 8855), usually TCP
	KindApplication Kind = "application"
)

// Transport is the stream's transport.
type Transport uint8

// Transports.
const (
	UDP Transport = iota
	TCP
)

func (t Transport) String() string {
	if t == TCP {
		return "tcp"
	}
	return "udp"
}

// Leg indexes the two sides of a session. Leg 0 is conventionally the
// offerer's side (the caller), leg 1 the answerer's.
type Leg int

// TCPRole is the relay's own role toward one leg's endpoint for TCP media
// (RFC 4145 section 4): Passive listens on the allocated port, Active
// connects to the endpoint's signalled address.
type TCPRole uint8

// TCP roles.
const (
	TCPPassive TCPRole = iota
	TCPActive
)

// StreamConfig describes one stream of a session as signalled.
type StreamConfig struct {
	// Kind is what the stream carries; it labels stats and picks the default
	// RTP clock rate.
	Kind Kind
	// Transport is UDP (RTP/RTCP, SRTP, DTLS, UDP/BFCP) or TCP (TCP/BFCP).
	Transport Transport
	// RTCPMux opens only the RTP socket on each leg (RFC 5761); RTCP then
	// shares it. The RTCP port is still reserved so a later update can open it.
	RTCPMux bool
	// Secure marks SRTP/SRTCP: packets pass untouched and RTCP reports, being
	// encrypted, are not read for statistics.
	Secure bool
	// Remote is each leg's endpoint RTP address as signalled (SDP c= and m=);
	// the zero value when not yet known (before the answer).
	Remote [2]netip.AddrPort
	// RemoteRTCP is each leg's signalled RTCP address; zero means Remote's
	// port + 1 (or Remote with rtcp-mux).
	RemoteRTCP [2]netip.AddrPort
	// Source is the IP address each leg's signalling came from when the
	// endpoint may be behind NAT (the public address of its SIP flow); the
	// zero value when unknown. With LatchNAT, media from this IP (any port)
	// may latch the leg as well as media from the signalled IP.
	Source [2]netip.Addr
	// Asymmetric marks a leg whose endpoint sends from another address than
	// it receives on: the leg never latches, its packets are accepted from
	// the signalled or signalling IP, and the relay sends to the signalled
	// address (rtpengine's "asymmetric" flag).
	Asymmetric [2]bool
	// StrictSource marks a leg whose latched peer is final: packets from
	// any other address are dropped, even when they continue the peer's
	// RTP stream or the peer has gone quiet (rtpengine's "strict source").
	StrictSource [2]bool
	// KeepAlive marks a leg whose endpoint sends ITU-T H.460.19 media
	// keep-alives to the leg's RTP port to open its NAT binding (UDP only).
	KeepAlive [2]KeepAlive
	// Multiplex marks a leg whose endpoint sends its RTP and RTCP to the
	// interface's multiplexed ports, each datagram prefixed with the
	// multiplexID the relay assigned (StreamInfo.MultiplexID), and to
	// which the relay then sends from those ports (H.460.19
	// multiplexing). Ignored on an interface without MultiplexPort.
	Multiplex [2]bool
	// MultiplexSend, when not zero, is the multiplexID a leg's endpoint
	// asked to receive its media with: the relay prefixes every datagram
	// toward it with this ID (sent from the multiplexed ports when the leg
	// is Multiplex, else from the stream's own).
	MultiplexSend [2]uint32
	// Role is the relay's TCP role on each leg (TCP only).
	Role [2]TCPRole
	// Hold marks the stream on hold (a=inactive/sendonly): it keeps relaying
	// but its silence does not count toward the inactivity timeout.
	Hold bool
	// Disabled releases (or never opens) the stream's sockets: an m= line
	// with port 0. The stream keeps its index.
	Disabled bool
	// ClockRate is the RTP clock in Hz used to turn RTCP jitter into
	// milliseconds. Default 8000 for audio, 90000 otherwise.
	ClockRate uint32
}

// KeepAlive describes the H.460.19 keep-alive packets of one leg: RTP
// packets with the keep-alive payload type, usually without payload, sent
// from the endpoint's receive port so that its NAT lets the relay's media
// in. They latch the leg by the same rule as any
// RTP and are counted, never forwarded.
type KeepAlive struct {
	// Enabled turns keep-alive recognition on for the leg.
	Enabled bool
	// PayloadType is the RTP payload type of the keep-alives (0–127).
	// RTP without payload counts as a keep-alive whatever its payload
	// type: some endpoints send another type than the one signalled.
	PayloadType uint8
}

// SessionConfig describes a session to allocate.
type SessionConfig struct {
	// Label is free text for logs and queries (e.g. the Call-ID).
	Label string
	// Interfaces names the Config interface of leg 0 and leg 1, for example
	// {"external", "internal"}.
	Interfaces [2]string
	// Streams are the session's streams in SDP order.
	Streams []StreamConfig
}

// StreamInfo is what the signalling side writes into SDP for a stream.
type StreamInfo struct {
	Index int
	Kind  Kind
	// Local is the relay's RTP (or TCP) address on each leg: the address
	// the leg's endpoint sends to. Advertised address when configured.
	Local [2]netip.AddrPort
	// LocalRTCP is the relay's RTCP address on each leg (Local with rtcp-mux).
	LocalRTCP [2]netip.AddrPort
	// MultiplexID is the ID a Multiplex leg's endpoint prefixes its media
	// with, 0 when the leg is not multiplexed; LocalMux and LocalMuxRTCP
	// are then the interface's multiplexed RTP and RTCP addresses.
	MultiplexID            [2]uint32
	LocalMux, LocalMuxRTCP [2]netip.AddrPort
	Disabled               bool
}

// LegStats are the counters of one leg of a stream.
type LegStats struct {
	// Packets and Bytes were received from this leg's endpoint and accepted.
	Packets, Bytes uint64
	// Forwarded packets were sent on to the other leg.
	Forwarded uint64
	// InKernel counts the packets among Packets and Forwarded that the
	// eBPF fast path forwarded without user space.
	InKernel uint64
	// Dropped packets came from a source that is not this leg's peer.
	Dropped uint64
	// Peer is the latched (or signalled) address of the leg's endpoint.
	Peer netip.AddrPort
	// Latched is true once Peer was learnt from a packet.
	Latched bool
	// LastPacket is when the last accepted packet arrived (zero: none).
	LastPacket time.Time
	// Lost, LossFraction and JitterMs are what this leg's endpoint reported
	// in its last RTCP receiver report block (RFC 3550 section 6.4.1).
	Lost         int64
	LossFraction float64
	JitterMs     float64
	// RTTMs is the round-trip time between the relay and this leg's
	// endpoint, from the endpoint's LSR/DLSR (RFC 3550 section 6.4.1).
	RTTMs float64
	// Reports counts RTCP compound packets read from this leg.
	Reports uint64
	// KeepAlives counts H.460.19 keep-alive packets accepted from this
	// leg's endpoint (not in Packets, never forwarded).
	KeepAlives uint64
}

// StreamStats are a stream's statistics, per leg.
type StreamStats struct {
	Index     int
	Kind      Kind
	Transport Transport
	Local     [2]netip.AddrPort
	Legs      [2]LegStats
	Hold      bool
	Disabled  bool
}

// Packets returns packets accepted from both legs.
func (s StreamStats) Packets() uint64 { return s.Legs[0].Packets + s.Legs[1].Packets }

// SessionStats describe a session, for queries and for call history at release.
type SessionStats struct {
	ID         SessionID
	Label      string
	Interfaces [2]string
	Created    time.Time
	Streams    []StreamStats
}

// LastPacket returns the latest packet time over all streams.
func (s SessionStats) LastPacket() time.Time {
	var t time.Time
	for _, st := range s.Streams {
		for _, l := range st.Legs {
			if l.LastPacket.After(t) {
				t = l.LastPacket
			}
		}
	}
	return t
}

// Timeout is passed to Deps.OnTimeout when a session's media stopped.
type Timeout struct {
	ID    SessionID
	Label string
	// Silent is how long the session carried no packet.
	Silent time.Duration
}
