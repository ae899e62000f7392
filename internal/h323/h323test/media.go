package h323test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/portico-edge/portico/internal/h323/h460"
)

// Kind is a media channel of a simulated call.
type Kind int

// The channels a simulated endpoint opens: audio (session 1, G.711 A-law),
// video (session 2, H.263) and H.239 content (session 3, extended video
// capability with the H.239 role) — what a room system opens.
const (
	Audio Kind = iota
	Video
	Content
)

// AllKinds lists audio, video and content.
var AllKinds = []Kind{Audio, Video, Content}

func (k Kind) String() string {
	switch k {
	case Audio:
		return "audio"
	case Video:
		return "video"
	case Content:
		return "content"
	}
	return "unknown"
}

// SessionID returns the H.245 sessionID of k.
func (k Kind) SessionID() int64 { return int64(k) + 1 }

func kindOfSession(id int64) (Kind, bool) {
	if id < 1 || id > 3 {
		return 0, false
	}
	return Kind(id - 1), true
}

// MediaConn is a media socket of a simulated endpoint; *net.UDPConn is
// one. EndpointConfig.WrapMedia puts another in front of it (a simulated
// NAT).
type MediaConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error)
	LocalAddr() net.Addr
	Close() error
}

// keepAlivePT is the payload type of the simulator's H.460.19 keep-alives
// (h323plus's).
const keepAlivePT = 127

// MediaStats counts one channel's RTP.
type MediaStats struct {
	Kind Kind
	// Local is where this side receives RTP (what it signalled as
	// mediaChannel); LocalRTCP its mediaControlChannel.
	Local, LocalRTCP netip.AddrPort
	// Remote is where this side sends RTP (the mediaChannel the peer
	// signalled), zero until known.
	Remote netip.AddrPort
	// Sent and Received count RTP packets; Echoed counts received packets
	// sent back to Remote.
	Sent, Received, Echoed int
	// From is the source of the last packet received.
	From netip.AddrPort
	// KeepAlives counts the H.460.19 keep-alives sent; KeepAliveTo is
	// where they went.
	KeepAlives  int
	KeepAliveTo netip.AddrPort
	// MultiplexTo and MultiplexID are where and with which prefix the
	// stream sends multiplexed (H.460.19), zero when it does not;
	// MultiplexRecv is the ID it asked to receive with. MultiplexSent and
	// MultiplexReceived count the prefixed packets.
	MultiplexTo                      netip.AddrPort
	MultiplexID, MultiplexRecv       uint32
	MultiplexSent, MultiplexReceived int
}

// stream is one channel's RTP and RTCP sockets.
type stream struct {
	kind      Kind
	rtp, rtcp MediaConn
	rec       *Recorder
	stop      chan struct{} // closed by close: ends the keep-alives
	echo      bool
	ssrc      uint32

	mu      sync.Mutex
	st      MediaStats
	seq     uint16
	changed chan struct{} // closed and replaced on every received packet
}

func newStream(kind Kind, ip netip.Addr, rec *Recorder, echo bool, ssrc uint32, wrap func(*net.UDPConn) MediaConn) (*stream, error) {
	rtpConn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, err
	}
	rtcpConn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		rtpConn.Close()
		return nil, err
	}
	var rtp, rtcp MediaConn = rtpConn, rtcpConn
	if wrap != nil {
		rtp, rtcp = wrap(rtpConn), wrap(rtcpConn)
	}
	s := &stream{kind: kind, rtp: rtp, rtcp: rtcp, rec: rec, echo: echo, ssrc: ssrc, changed: make(chan struct{}), stop: make(chan struct{})}
	s.st = MediaStats{Kind: kind, Local: addrPort(rtp.LocalAddr()), LocalRTCP: addrPort(rtcp.LocalAddr()), MultiplexRecv: ssrc + 1}
	rec.Port(int(s.st.Local.Port()), "rtp")
	return s, nil
}

func (s *stream) close() {
	s.mu.Lock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.mu.Unlock()
	s.rtp.Close()
	s.rtcp.Close()
}

// keepAlive sends H.460.19 keep-alives (RTP with payload type pt and no
// payload, H.460.19) from the stream's RTP socket to to, at once and
// then every interval until the stream closes. A second call for the
// same destination does nothing.
func (s *stream) keepAlive(wg *sync.WaitGroup, to netip.AddrPort, pt byte, every time.Duration) {
	s.mu.Lock()
	if s.st.KeepAliveTo == to {
		s.mu.Unlock()
		return
	}
	s.st.KeepAliveTo = to
	s.mu.Unlock()
	send := func() {
		b, to := s.muxed(s.packet(pt)[:12], to)
		if _, err := s.rtp.WriteToUDPAddrPort(b, to); err == nil {
			s.rec.UDP(s.st.Local, to, b)
			s.mu.Lock()
			s.st.KeepAlives++
			s.mu.Unlock()
			s.notify()
		}
	}
	send()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.mu.Lock()
				current := s.st.KeepAliveTo == to
				s.mu.Unlock()
				if !current {
					return
				}
				send()
			}
		}
	}()
}

// setRemote sets where RTP goes.
func (s *stream) setRemote(ap netip.AddrPort) {
	s.mu.Lock()
	s.st.Remote = ap
	s.mu.Unlock()
	s.notify()
}

func (s *stream) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *stream) stats() MediaStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// packet builds an RTP packet (RFC 3550 §5.1) with payload type pt.
func (s *stream) packet(pt byte) []byte {
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	b := make([]byte, 12+160)
	b[0] = 0x80
	b[1] = pt
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], s.ssrc)
	for i := 12; i < len(b); i++ {
		b[i] = 0xd5 // A-law silence
	}
	return b
}

func payloadType(k Kind) byte {
	if k == Audio {
		return 8 // PCMA
	}
	return 34 // H.263
}

// clientParams are the traversal parameters of the stream's channels
// as an H.460.19 client sends them: with multiplex, its own RTP and RTCP
// addresses and the multiplexID it receives with.
func (s *stream) clientParams(multiplex bool) *h460.TraversalParameters {
	p := &h460.TraversalParameters{}
	if multiplex {
		st := s.stats()
		p.MultiplexedMediaChannel, p.MultiplexedMediaControlChannel = h245Addr(st.Local), h245Addr(st.LocalRTCP)
		p.MultiplexID, p.HasMultiplexID = st.MultiplexRecv, true
	}
	return p
}

// sendMultiplexed makes the stream send its RTP and keep-alives to to,
// prefixed with id.
func (s *stream) sendMultiplexed(to netip.AddrPort, id uint32) {
	s.mu.Lock()
	s.st.MultiplexTo, s.st.MultiplexID = to, id
	s.mu.Unlock()
}

// muxed returns b prefixed with the stream's multiplexID and the
// multiplexed destination when the stream sends multiplexed to to (or
// to is zero), else b and to.
func (s *stream) muxed(b []byte, to netip.AddrPort) ([]byte, netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.MultiplexID == 0 || to.IsValid() && to != s.st.MultiplexTo && to != s.st.Remote {
		return b, to
	}
	s.st.MultiplexSent++
	return append(binary.BigEndian.AppendUint32(nil, s.st.MultiplexID), b...), s.st.MultiplexTo
}

// send sends n RTP packets to the remote address; it returns an error when
// the remote address is not known yet.
func (s *stream) send(n int) error {
	s.mu.Lock()
	to := s.st.Remote
	s.mu.Unlock()
	if !to.IsValid() {
		return ErrNoRemote
	}
	for i := 0; i < n; i++ {
		b, to := s.muxed(s.packet(payloadType(s.kind)), to)
		if _, err := s.rtp.WriteToUDPAddrPort(b, to); err != nil {
			return err
		}
		s.rec.UDP(s.st.Local, to, b)
		s.mu.Lock()
		s.st.Sent++
		s.mu.Unlock()
	}
	return nil
}

// serve counts (and echoes) RTP until the socket closes; RTCP is drained.
func (s *stream) serve() {
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := s.rtcp.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 2048)
	for {
		n, from, err := s.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		muxed := n >= 16 && binary.BigEndian.Uint32(buf) == s.st.MultiplexRecv
		s.mu.Unlock()
		if muxed {
			copy(buf, buf[4:n])
			n -= 4
		}
		if n < 12 || buf[0]>>6 != 2 {
			continue
		}
		s.mu.Lock()
		if muxed {
			s.st.MultiplexReceived++
		}
		s.st.Received++
		s.st.From = unmap(from)
		to := s.st.Remote
		echo := s.echo && to.IsValid()
		if echo {
			s.st.Echoed++
		}
		s.mu.Unlock()
		if echo {
			b := append([]byte(nil), buf[:n]...)
			binary.BigEndian.PutUint32(b[8:], s.ssrc)
			if _, err := s.rtp.WriteToUDPAddrPort(b, to); err == nil {
				s.rec.UDP(s.st.Local, to, b)
			}
		}
		s.notify()
	}
}

// wait blocks until cond holds for the stream's stats or ctx ends.
func (s *stream) wait(ctx context.Context, cond func(MediaStats) bool) error {
	for {
		s.mu.Lock()
		ok := cond(s.st)
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return errors.Join(ErrTimeout, ctx.Err())
		}
	}
}
