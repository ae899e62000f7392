package h245proxy

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/h460"
	"github.com/portico-edge/portico/internal/media"
)

// Side is one side of the edge; it is also the relay leg of that side.
type Side int

// The two sides.
const (
	Outside Side = 0
	Inside  Side = 1
)

// Other returns the opposite side.
func (s Side) Other() Side { return 1 - s }

func (s Side) String() string {
	if s == Outside {
		return "outside"
	}
	return "inside"
}

// Media is what a Session needs from the media relay. *media.Relay
// satisfies it.
type Media interface {
	Allocate(sc media.SessionConfig) (media.SessionID, []media.StreamInfo, error)
	Update(id media.SessionID, streams []media.StreamConfig) ([]media.StreamInfo, error)
	Release(id media.SessionID) (media.SessionStats, error)
}

var _ Media = (*media.Relay)(nil)

// SessionConfig describes one call's media.
type SessionConfig struct {
	// Label names the relay session in logs (the call identifier).
	Label string
	// Interfaces names the relay interface of the outside and the inside.
	Interfaces [2]string
	// MaxStreams caps the relay streams of the call (default
	// DefaultMaxStreams); a channel beyond it fails with ErrMedia.
	MaxStreams int
	// Source is the IP each side's call signalling comes from (the NAT
	// binding of an outside endpoint); media from it may latch the leg
	// (docs/config.md "Latching"). Zero when unknown.
	Source [2]netip.Addr
	// Traversal makes Portico the H.460.19 media traversal server of the
	// outside endpoint: set when that endpoint offered H.460.19.
	Traversal Traversal
}

// Traversal is what Portico, as H.460.19 traversal server, asks of an
// outside endpoint behind NAT: in every
// OpenLogicalChannel and OpenLogicalChannelAck sent to it, the relay's
// outside RTP address of the channel's stream as keepAliveChannel, with
// keepAlivePayloadType and keepAliveInterval. The endpoint sends RTP
// keep-alives from its media ports there, which opens its NAT binding;
// the relay latches the leg to their source and does not forward them.
//
// With Multiplex (the endpoint can transmit multiplexed media, H.460.19
// supportTransmitMultiplexedMedia) and a relay interface with a
// multiplexed port, the parameters also name that port as
// multiplexedMediaChannel and multiplexedMediaControlChannel, with the
// multiplexID of the stream's outside leg, and the port is the
// keepAliveChannel. An endpoint whose own parameters name a multiplexID
// receives its media prefixed with it.
type Traversal struct {
	Enabled   bool
	Multiplex bool
	// KeepAliveInterval is the keepAliveInterval asked for (default
	// DefaultKeepAliveInterval; whole seconds, at least 1).
	KeepAliveInterval time.Duration
	// PayloadType is the keepAlivePayloadType offered (default
	// DefaultKeepAlivePayloadType); an endpoint that names its own in
	// its OpenLogicalChannelAck is recognised by that one.
	PayloadType uint8
}

// Defaults of Traversal.
const (
	DefaultKeepAliveInterval    = 19 * time.Second
	DefaultKeepAlivePayloadType = 127
)

// DefaultMaxStreams is the default cap of relay streams per call: audio,
// main video, content, data and FECC with room to spare.
const DefaultMaxStreams = 10

// chanKey names a logical channel: the side that opened it and its
// forwardLogicalChannelNumber.
type chanKey struct {
	opener Side
	lcn    h245.LogicalChannelNumber
}

// Session is the media adapter of one call: it allocates relay streams as
// logical channels appear and rewrites their addresses. Safe for
// concurrent use; Close releases the relay session and is idempotent.
type Session struct {
	media Media
	cfg   SessionConfig

	mu        sync.Mutex
	id        media.SessionID
	allocated bool
	closed    bool
	streams   []media.StreamConfig
	infos     []media.StreamInfo
	bySession map[int64]int // H.245 sessionID → stream index
	byChannel map[chanKey]int
	stats     media.SessionStats
	codecs    map[int64]string // H.245 sessionID → codec name (live.go)
}

// NewSession returns a session that allocates relay streams on m when the
// first logical channel needs one.
func NewSession(m Media, cfg SessionConfig) *Session {
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.Traversal.KeepAliveInterval < time.Second {
		cfg.Traversal.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if cfg.Traversal.PayloadType == 0 || cfg.Traversal.PayloadType > 127 {
		cfg.Traversal.PayloadType = DefaultKeepAlivePayloadType
	}
	return &Session{media: m, cfg: cfg, bySession: map[int64]int{}, byChannel: map[chanKey]int{}}
}

// EnableMultiplex offers multiplexed media to the outside endpoint in
// the RTP sessions opened from now on, once it said it can transmit it
// (supportTransmitMultiplexedMedia in its answer to the Setup). Sessions
// already open keep the ports their keepAliveChannel named, where the
// endpoint's NAT binding points. Without Traversal it does nothing.
func (s *Session) EnableMultiplex() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Traversal.Multiplex = s.cfg.Traversal.Enabled
}

// Close releases the relay session and returns its statistics.
func (s *Session) Close() media.SessionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.stats
	}
	s.closed = true
	if s.allocated {
		s.stats, _ = s.media.Release(s.id)
	}
	return s.stats
}

// ID returns the relay session's ID, 0 before the first channel allocated
// it and after Close.
func (s *Session) ID() media.SessionID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.allocated || s.closed {
		return 0
	}
	return s.id
}

// Streams returns the number of relay streams allocated.
func (s *Session) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// kindOf picks the relay stream kind from an H.245 dataType and session.
func kindOf(dt *h245.DataType, sessionID int64) (kind media.Kind, secure bool) {
	c := dt.Choice
	if c == h245.DataType_H235Media && dt.H235Media != nil {
		secure = true
		switch dt.H235Media.MediaType.Choice {
		case h245.H235MediaMediaType_AudioData:
			c = h245.DataType_AudioData
		case h245.H235MediaMediaType_VideoData:
			c = h245.DataType_VideoData
		default:
			c = h245.DataType_Data
		}
	}
	switch {
	case c == h245.DataType_AudioData:
		return media.KindAudio, secure
	case c == h245.DataType_VideoData && (sessionID == 2):
		return media.KindVideo, secure
	case c == h245.DataType_VideoData:
		return media.KindContent, secure
	}
	return media.KindApplication, secure
}

// stream returns the index of the relay stream of a channel, allocating it.
// Caller holds s.mu.
func (s *Session) stream(key chanKey, sessionID int64, kind media.Kind, secure bool) (int, error) {
	if s.closed {
		return 0, ErrClosed
	}
	if i, ok := s.byChannel[key]; ok {
		if sessionID != 0 {
			s.bySession[sessionID] = i
		}
		return i, nil
	}
	if i, ok := s.bySession[sessionID]; ok && sessionID != 0 {
		s.byChannel[key] = i
		return i, nil
	}
	if len(s.streams) >= s.cfg.MaxStreams {
		return 0, fmt.Errorf("%w: more than %d streams", ErrMedia, s.cfg.MaxStreams)
	}
	c := media.StreamConfig{Kind: kind, Transport: media.UDP, Secure: secure, Source: s.cfg.Source}
	if s.cfg.Traversal.Enabled {
		c.KeepAlive[Outside] = media.KeepAlive{Enabled: true, PayloadType: s.cfg.Traversal.PayloadType}
		c.Multiplex[Outside] = s.cfg.Traversal.Multiplex
	}
	var err error
	if !s.allocated {
		s.id, s.infos, err = s.media.Allocate(media.SessionConfig{Label: s.cfg.Label, Interfaces: s.cfg.Interfaces, Streams: []media.StreamConfig{c}})
		if err == nil {
			s.allocated = true
		}
	} else {
		s.infos, err = s.media.Update(s.id, append(s.streams[:len(s.streams):len(s.streams)], c))
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrMedia, err)
	}
	s.streams = append(s.streams, c)
	i := len(s.streams) - 1
	s.byChannel[key] = i
	if sessionID != 0 {
		s.bySession[sessionID] = i
	}
	return i, nil
}

// swap records addr (RTP when rtcp is false) as side from's endpoint
// address on stream i and returns the relay's address that replaces it
// on the other side. Caller holds s.mu.
func (s *Session) swap(i int, from Side, ta *h245.TransportAddress, rtcp bool) (*h245.TransportAddress, error) {
	ap, ok := unicastAddrPort(ta)
	if !ok {
		return nil, ErrAddress
	}
	c := &s.streams[i]
	if i < len(s.infos) {
		// The relay's own address on from's side is an echo, not from's
		// endpoint: a callee accepting a fastStart proposal returns the
		// caller's mediaChannel as Portico rewrote it (H.225.0 §8.1.7).
		// The other side gets its own address back.
		own, back := s.infos[i].Local[from], c.Remote[from.Other()]
		if rtcp {
			own, back = s.infos[i].LocalRTCP[from], c.RemoteRTCP[from.Other()]
		}
		if ap == own && back.IsValid() {
			return newTransportAddress(back), nil
		}
	}
	changed := false
	if rtcp {
		if c.RemoteRTCP[from] != ap {
			c.RemoteRTCP[from], changed = ap, true
		}
		if !c.Remote[from].IsValid() && ap.Port() > 1 {
			// The IP is what latching needs; the port is the usual pair.
			c.Remote[from], changed = netip.AddrPortFrom(ap.Addr(), ap.Port()-1), true
		}
	} else if c.Remote[from] != ap {
		c.Remote[from], changed = ap, true
	}
	if changed {
		infos, err := s.media.Update(s.id, s.streams)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMedia, err)
		}
		s.infos = infos
	}
	if i >= len(s.infos) {
		return nil, fmt.Errorf("%w: stream %d missing", ErrMedia, i)
	}
	local := s.infos[i].Local[from.Other()]
	if rtcp {
		local = s.infos[i].LocalRTCP[from.Other()]
	}
	return newTransportAddress(local), nil
}

// rewriteParams rewrites the addresses of H2250LogicalChannelParameters
// sent by side from.
// It returns the index of the channel's relay stream, -1 when the
// parameters name no address.
func (s *Session) rewriteParams(key chanKey, from Side, p *h245.H2250LogicalChannelParameters, dt *h245.DataType) (int, error) {
	if p == nil || p.MediaChannel == nil && p.MediaControlChannel == nil {
		return -1, nil
	}
	kind, secure := kindOf(dt, p.SessionID)
	s.noteCodec(p.SessionID, dt)
	return s.swapBoth(key, p.SessionID, kind, secure, from, &p.MediaChannel, &p.MediaControlChannel)
}

// swapBoth rewrites a channel's RTP and RTCP addresses (either may be
// absent) on the stream of key. Caller holds s.mu.
func (s *Session) swapBoth(key chanKey, sessionID int64, kind media.Kind, secure bool, from Side, rtp, rtcp **h245.TransportAddress) (int, error) {
	i, err := s.stream(key, sessionID, kind, secure)
	if err != nil {
		return -1, err
	}
	for _, a := range []struct {
		ta   **h245.TransportAddress
		rtcp bool
	}{{rtp, false}, {rtcp, true}} {
		if *a.ta != nil {
			if *a.ta, err = s.swap(i, from, *a.ta, a.rtcp); err != nil {
				return -1, err
			}
		}
	}
	return i, nil
}

// stripTraversal removes H.460.19 traversal parameters from a channel's
// genericInformation. They carry one side's keep-alive and multiplexed
// media addresses, which mean nothing on the other side (and would show
// it inside addresses); the relay's own ports replace them, and an
// endpoint without them uses plain RTP, which the relay latches.
func stripTraversal(gi *[]h245.GenericInformation, has *bool) {
	out := (*gi)[:0]
	for _, g := range *gi {
		if g.MessageIdentifier.Choice == h245.CapabilityIdentifier_Standard && bytes.Equal(g.MessageIdentifier.Standard, h460.MediaTraversalOID) {
			continue
		}
		out = append(out, g)
	}
	*gi = out
	if len(out) == 0 {
		*gi, *has = nil, false
	}
}

// serverTraversal returns the traversal parameters Portico sends the
// outside endpoint for relay stream i. Caller holds s.mu.
func (s *Session) serverTraversal(i int) (*h460.TraversalParameters, bool) {
	if !s.cfg.Traversal.Enabled || i < 0 || i >= len(s.infos) || !s.infos[i].Local[Outside].IsValid() {
		return nil, false
	}
	in := &s.infos[i]
	p := &h460.TraversalParameters{
		KeepAliveChannel:     newTransportAddress(in.Local[Outside]),
		KeepAlivePayloadType: s.cfg.Traversal.PayloadType, HasKeepAlivePayloadType: true,
		KeepAliveInterval: uint32(s.cfg.Traversal.KeepAliveInterval / time.Second), HasKeepAliveInterval: true,
	}
	if id := in.MultiplexID[Outside]; id != 0 {
		p.MultiplexedMediaChannel = newTransportAddress(in.LocalMux[Outside])
		p.MultiplexedMediaControlChannel = newTransportAddress(in.LocalMuxRTCP[Outside])
		p.MultiplexID, p.HasMultiplexID = id, true
		p.KeepAliveChannel = newTransportAddress(in.LocalMux[Outside])
	}
	return p, true
}

// readTraversal returns the traversal parameters among gi, nil when there
// are none or they do not decode. It is read before stripTraversal, which
// reuses gi's array.
func readTraversal(gi []h245.GenericInformation) *h460.TraversalParameters {
	p, found, err := h460.Traversal(gi)
	if !found || err != nil {
		return nil
	}
	return &p
}

// clientTraversal records what an outside endpoint's traversal
// parameters in gi ask of stream i: the keepAlivePayloadType it sends
// and the multiplexID it receives its media with. Malformed or absent
// parameters change nothing (keep-alives are then recognised by the
// offered type and by empty RTP). Caller holds s.mu.
func (s *Session) clientTraversal(i int, p *h460.TraversalParameters) error {
	if !s.cfg.Traversal.Enabled || i < 0 || i >= len(s.streams) || p == nil {
		return nil
	}
	c := &s.streams[i]
	changed := false
	if p.HasKeepAlivePayloadType && c.KeepAlive[Outside].PayloadType != p.KeepAlivePayloadType {
		c.KeepAlive[Outside] = media.KeepAlive{Enabled: true, PayloadType: p.KeepAlivePayloadType}
		changed = true
	}
	mm, _ := unicastAddrPort(p.MultiplexedMediaChannel)
	// The relay's own multiplexed port is an echo of Portico's parameters
	// (a fastStart answer returning the proposal), not a request.
	echo := i < len(s.infos) && mm == s.infos[i].LocalMux[Outside]
	if p.HasMultiplexID && p.MultiplexID != 0 && mm.IsValid() && !echo && c.MultiplexSend[Outside] != p.MultiplexID {
		c.MultiplexSend[Outside] = p.MultiplexID
		changed = true
	}
	if !changed {
		return nil
	}
	infos, err := s.media.Update(s.id, s.streams)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMedia, err)
	}
	s.infos = infos
	return nil
}

// RewriteOLC rewrites an OpenLogicalChannel sent by side from.
func (s *Session) RewriteOLC(from Side, olc *h245.OpenLogicalChannel) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	client := readTraversal(olc.GenericInformation)
	stripTraversal(&olc.GenericInformation, &olc.HasGenericInformation)
	key := chanKey{from, olc.ForwardLogicalChannelNumber}
	stream := -1
	fp := &olc.ForwardLogicalChannelParameters
	if fp.MultiplexParameters.Choice == h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters {
		i, err := s.rewriteParams(key, from, fp.MultiplexParameters.H2250LogicalChannelParameters, &fp.DataType)
		if err != nil {
			return err
		}
		stream = max(stream, i)
	}
	if rp := olc.ReverseLogicalChannelParameters; rp != nil && rp.MultiplexParameters != nil &&
		rp.MultiplexParameters.Choice == h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters {
		dt := &rp.DataType
		if fp.DataType.Choice != h245.DataType_NullData {
			dt = &fp.DataType
		}
		i, err := s.rewriteParams(key, from, rp.MultiplexParameters.H2250LogicalChannelParameters, dt)
		if err != nil {
			return err
		}
		stream = max(stream, i)
	}
	if from == Outside {
		if err := s.clientTraversal(stream, client); err != nil {
			return err
		}
	}
	if from == Inside {
		if p, ok := s.serverTraversal(stream); ok {
			if err := h460.SetOLCTraversal(olc, p); err != nil {
				return fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		}
	}
	return nil
}

// RewriteOLCAck rewrites an OpenLogicalChannelAck sent by side from, the
// answer to an OpenLogicalChannel the other side opened.
func (s *Session) RewriteOLCAck(from Side, ack *h245.OpenLogicalChannelAck) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := chanKey{from.Other(), ack.ForwardLogicalChannelNumber}
	stream := -1
	if fm := ack.ForwardMultiplexAckParameters; fm != nil && fm.H2250LogicalChannelAckParameters != nil {
		p := fm.H2250LogicalChannelAckParameters
		if p.MediaChannel != nil || p.MediaControlChannel != nil {
			kind := media.KindApplication
			if p.SessionID == 1 {
				kind = media.KindAudio
			} else if p.SessionID == 2 {
				kind = media.KindVideo
			}
			i, err := s.swapBoth(key, p.SessionID, kind, false, from, &p.MediaChannel, &p.MediaControlChannel)
			if err != nil {
				return err
			}
			stream = i
		}
	}
	if rp := ack.ReverseLogicalChannelParameters; rp != nil && rp.MultiplexParameters != nil && rp.MultiplexParameters.H2250LogicalChannelParameters != nil {
		p := rp.MultiplexParameters.H2250LogicalChannelParameters
		var dt h245.DataType
		dt.Choice = h245.DataType_Data
		if p.SessionID == 1 {
			dt.Choice = h245.DataType_AudioData
		}
		i, err := s.rewriteParams(key, from, p, &dt)
		if err != nil {
			return err
		}
		stream = max(stream, i)
	}
	if from == Outside {
		if err := s.clientTraversal(stream, readTraversal(ack.GenericInformation)); err != nil {
			return err
		}
	}
	stripTraversal(&ack.GenericInformation, &ack.HasGenericInformation)
	if from == Inside {
		if p, ok := s.serverTraversal(stream); ok {
			if err := h460.SetAckTraversal(ack, p); err != nil {
				return fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		}
	}
	return nil
}

// RewritePDU returns the H.245 PDU b as the other side must receive it:
// b itself when nothing in it names a media address, else the re-encoded
// message with relay addresses.
func (s *Session) RewritePDU(from Side, b []byte) ([]byte, error) {
	var m h245.MultimediaSystemControlMessage
	if err := m.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case m.Choice == h245.MultimediaSystemControlMessage_Request && m.Request != nil &&
		m.Request.Choice == h245.RequestMessage_OpenLogicalChannel && m.Request.OpenLogicalChannel != nil:
		if err := s.RewriteOLC(from, m.Request.OpenLogicalChannel); err != nil {
			return nil, err
		}
	case m.Choice == h245.MultimediaSystemControlMessage_Response && m.Response != nil &&
		m.Response.Choice == h245.ResponseMessage_OpenLogicalChannelAck && m.Response.OpenLogicalChannelAck != nil:
		if err := s.RewriteOLCAck(from, m.Response.OpenLogicalChannelAck); err != nil {
			return nil, err
		}
	default:
		return b, nil
	}
	out, err := m.Append(make([]byte, 0, len(b)+16))
	if err != nil {
		return nil, fmt.Errorf("%w: re-encode: %v", ErrMalformed, err)
	}
	return out, nil
}

// RewriteFastStart returns the fastStart elements (encoded
// OpenLogicalChannel, H.225.0 §8.1.7) sent by side from with relay
// addresses. In a Setup they are the caller's proposals, in the answer
// the callee's choices (whose forwardLogicalChannelNumber names the
// proposal), so both land on the same relay stream through the sessionID.
func (s *Session) RewriteFastStart(from Side, elems [][]byte) ([][]byte, error) {
	out := make([][]byte, len(elems))
	for i, b := range elems {
		var olc h245.OpenLogicalChannel
		d := asn1per.NewDecoder(b)
		if err := olc.Decode(d); err != nil {
			return nil, fmt.Errorf("%w: fastStart %d: %v", ErrMalformed, i, err)
		}
		if err := s.RewriteOLC(from, &olc); err != nil {
			return nil, fmt.Errorf("fastStart %d: %w", i, err)
		}
		// An element grows by a few octets at most (relay addresses in
		// place of the endpoint's): one buffer of that size.
		enc := asn1per.NewEncoder(make([]byte, 0, len(b)+32))
		err := olc.Encode(enc)
		e := enc.Complete()
		if err != nil {
			return nil, fmt.Errorf("%w: fastStart %d re-encode: %v", ErrMalformed, i, err)
		}
		if bytes.Equal(e, b) {
			e = b
		}
		out[i] = e
	}
	return out, nil
}
