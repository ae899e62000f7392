package h245proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/h460"
	"github.com/portico-edge/portico/internal/media"
)

// fakeMedia hands out predictable relay addresses: stream i has RTP port
// 10000+10i on the outside (127.0.0.2) and 20000+10i inside (127.0.0.3).
type fakeMedia struct {
	mu       sync.Mutex
	streams  []media.StreamConfig
	released bool
	fail     bool
}

func (f *fakeMedia) infos() []media.StreamInfo {
	out := make([]media.StreamInfo, len(f.streams))
	for i := range f.streams {
		p := uint16(10 * i)
		out[i] = media.StreamInfo{Index: i, Kind: f.streams[i].Kind,
			Local:     [2]netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:10000"), netip.MustParseAddrPort("127.0.0.3:20000")},
			LocalRTCP: [2]netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:10001"), netip.MustParseAddrPort("127.0.0.3:20001")}}
		for l := range 2 {
			out[i].Local[l] = netip.AddrPortFrom(out[i].Local[l].Addr(), out[i].Local[l].Port()+p)
			out[i].LocalRTCP[l] = netip.AddrPortFrom(out[i].LocalRTCP[l].Addr(), out[i].LocalRTCP[l].Port()+p)
		}
		if f.streams[i].Multiplex[0] { // the relay's multiplexed port 9000
			out[i].MultiplexID[0] = uint32(1000 + i)
			out[i].LocalMux[0], out[i].LocalMuxRTCP[0] = netip.MustParseAddrPort("127.0.0.2:9000"), netip.MustParseAddrPort("127.0.0.2:9001")
		}
	}
	return out
}

func (f *fakeMedia) Allocate(sc media.SessionConfig) (media.SessionID, []media.StreamInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return media.SessionID(0), nil, errors.New("no ports")
	}
	f.streams = append([]media.StreamConfig(nil), sc.Streams...)
	return media.SessionID(1), f.infos(), nil
}

func (f *fakeMedia) Update(id media.SessionID, streams []media.StreamConfig) ([]media.StreamInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams = append([]media.StreamConfig(nil), streams...)
	return f.infos(), nil
}

func (f *fakeMedia) Release(id media.SessionID) (media.SessionStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = true
	return media.SessionStats{}, nil
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func h2250(session int64, rtp, rtcp string) *h245.H2250LogicalChannelParameters {
	p := &h245.H2250LogicalChannelParameters{SessionID: session}
	if rtp != "" {
		p.MediaChannel = newTransportAddress(ap(rtp))
	}
	if rtcp != "" {
		p.MediaControlChannel = newTransportAddress(ap(rtcp))
	}
	return p
}

func audio() h245.DataType {
	return h245.DataType{Choice: h245.DataType_AudioData, AudioData: &h245.AudioCapability{Choice: h245.AudioCapability_G711Ulaw64k, G711Ulaw64k: 20}}
}

func olc(lcn, session int64, rtp, rtcp string) *h245.OpenLogicalChannel {
	return &h245.OpenLogicalChannel{ForwardLogicalChannelNumber: h245.LogicalChannelNumber(lcn),
		ForwardLogicalChannelParameters: h245.OpenLogicalChannelForwardLogicalChannelParameters{DataType: audio(),
			MultiplexParameters: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters{
				Choice:                        h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
				H2250LogicalChannelParameters: h2250(session, rtp, rtcp)}}}
}

func olcPDU(t testing.TB, o *h245.OpenLogicalChannel) []byte {
	m := &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Request,
		Request: &h245.RequestMessage{Choice: h245.RequestMessage_OpenLogicalChannel, OpenLogicalChannel: o}}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ackPDU(t testing.TB, lcn, session int64, rtp, rtcp string) []byte {
	m := &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Response,
		Response: &h245.ResponseMessage{Choice: h245.ResponseMessage_OpenLogicalChannelAck, OpenLogicalChannelAck: &h245.OpenLogicalChannelAck{
			ForwardLogicalChannelNumber: h245.LogicalChannelNumber(lcn),
			ForwardMultiplexAckParameters: &h245.OpenLogicalChannelAckForwardMultiplexAckParameters{
				Choice: h245.OpenLogicalChannelAckForwardMultiplexAckParameters_H2250LogicalChannelAckParameters,
				H2250LogicalChannelAckParameters: &h245.H2250LogicalChannelAckParameters{SessionID: session, HasSessionID: true,
					MediaChannel: newTransportAddress(ap(rtp)), MediaControlChannel: newTransportAddress(ap(rtcp))}}}}}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t testing.TB, b []byte) *h245.MultimediaSystemControlMessage {
	t.Helper()
	var m h245.MultimediaSystemControlMessage
	if err := m.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return &m
}

// TestOLCAndAck: an OLC from outside gets the relay's inside RTCP address
// and records the outside endpoint's; the inside's OLCAck gets the relay's
// outside addresses and the relay learns the inside endpoint's.
func TestOLCAndAck(t *testing.T) {
	fm := &fakeMedia{}
	s := NewSession(fm, SessionConfig{Interfaces: [2]string{"external", "internal"}, Source: [2]netip.Addr{netip.MustParseAddr("198.51.100.7")}})
	out, err := s.RewritePDU(Outside, olcPDU(t, olc(1, 1, "", "192.0.2.10:5001")))
	if err != nil {
		t.Fatal(err)
	}
	p := decode(t, out).Request.OpenLogicalChannel.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters
	if got, _ := unicastAddrPort(p.MediaControlChannel); got != ap("127.0.0.3:20001") {
		t.Fatalf("OLC rtcp toward inside %v", got)
	}
	out, err = s.RewritePDU(Inside, ackPDU(t, 1, 1, "10.1.1.5:6000", "10.1.1.5:6001"))
	if err != nil {
		t.Fatal(err)
	}
	a := decode(t, out).Response.OpenLogicalChannelAck.ForwardMultiplexAckParameters.H2250LogicalChannelAckParameters
	if got, _ := unicastAddrPort(a.MediaChannel); got != ap("127.0.0.2:10000") {
		t.Fatalf("ack rtp toward outside %v", got)
	}
	if got, _ := unicastAddrPort(a.MediaControlChannel); got != ap("127.0.0.2:10001") {
		t.Fatalf("ack rtcp toward outside %v", got)
	}
	if len(fm.streams) != 1 {
		t.Fatalf("%d streams", len(fm.streams))
	}
	st := fm.streams[0]
	if st.Kind != media.KindAudio || st.RemoteRTCP[Outside] != ap("192.0.2.10:5001") || st.Remote[Inside] != ap("10.1.1.5:6000") ||
		st.RemoteRTCP[Inside] != ap("10.1.1.5:6001") || st.Source[Outside] != netip.MustParseAddr("198.51.100.7") {
		t.Fatalf("stream config %+v", st)
	}
	// A second session (video) gets its own stream; the same session again does not.
	if _, err := s.RewritePDU(Outside, olcPDU(t, olc(2, 2, "", "192.0.2.10:5003"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RewritePDU(Inside, olcPDU(t, olc(7, 1, "", "10.1.1.5:6001"))); err != nil {
		t.Fatal(err)
	}
	if len(fm.streams) != 2 {
		t.Fatalf("%d streams, want 2", len(fm.streams))
	}
	s.Close()
	s.Close()
	if !fm.released {
		t.Fatal("not released")
	}
	if _, err := s.RewritePDU(Outside, olcPDU(t, olc(3, 3, "", "192.0.2.10:5005"))); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

// TestPassThrough: PDUs without media addresses come back as the same bytes.
func TestPassThrough(t *testing.T) {
	s := NewSession(&fakeMedia{}, SessionConfig{})
	msgs := []*h245.MultimediaSystemControlMessage{
		{Choice: h245.MultimediaSystemControlMessage_Indication, Indication: &h245.IndicationMessage{Choice: h245.IndicationMessage_UserInput,
			UserInput: &h245.UserInputIndication{Choice: h245.UserInputIndication_Alphanumeric, Alphanumeric: []byte("#")}}},
		{Choice: h245.MultimediaSystemControlMessage_Request, Request: &h245.RequestMessage{Choice: h245.RequestMessage_MasterSlaveDetermination,
			MasterSlaveDetermination: &h245.MasterSlaveDetermination{TerminalType: 60, StatusDeterminationNumber: 12345}}},
	}
	for i, m := range msgs {
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.RewritePDU(Outside, b)
		if err != nil || !bytes.Equal(out, b) || &out[0] != &b[0] {
			t.Fatalf("message %d changed: %v", i, err)
		}
	}
	if _, err := s.RewritePDU(Outside, []byte{0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestMediaFailure(t *testing.T) {
	s := NewSession(&fakeMedia{fail: true}, SessionConfig{})
	if _, err := s.RewritePDU(Outside, olcPDU(t, olc(1, 1, "", "192.0.2.10:5001"))); !errors.Is(err, ErrMedia) {
		t.Fatalf("got %v", err)
	}
}

func TestFrameReader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"keep-alive then frame", []byte{3, 0, 0, 4, 3, 0, 0, 5, 9}, nil},
		{"version", []byte{2, 0, 0, 5, 9}, ErrFrame},
		{"length below header", []byte{3, 0, 0, 3}, ErrFrame},
		{"over cap", []byte{3, 0, 0, 40}, ErrFrame},
		{"cut", []byte{3, 0, 0, 9, 1}, io.ErrUnexpectedEOF},
		{"empty", nil, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewFrameReader(bytes.NewReader(tt.in), 16)
			p, err := r.Next()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err == nil && !bytes.Equal(p, []byte{9}) {
				t.Fatalf("payload % x", p)
			}
		})
	}
}

// bridgeTarget listens on 127.0.0.3 for the connection a bridge makes to
// its inside peer, until the test ends.
type bridgeTarget struct{ *net.TCPListener }

func newBridgeTarget(t *testing.T) bridgeTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return bridgeTarget{ln.(*net.TCPListener)}
}

func (bt bridgeTarget) addrPort() netip.AddrPort {
	return bt.Addr().(*net.TCPAddr).AddrPort()
}

// accept waits (5 s at most) for the bridge's connection; it is closed
// when the test ends.
func (bt bridgeTarget) accept(t *testing.T) net.Conn {
	t.Helper()
	bt.SetDeadline(time.Now().Add(5 * time.Second))
	in, err := bt.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

// dialBridge connects to b from the loopback address from (any when
// invalid); the connection is closed when the test ends.
func dialBridge(t *testing.T, b *Bridge, from netip.Addr) net.Conn {
	t.Helper()
	var d net.Dialer
	if from.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
	}
	c, err := d.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestBridge: the endpoint on the outside connects to the bridge, the
// bridge connects to the inside target, and PDUs flow both ways with OLC
// addresses rewritten.
func TestBridge(t *testing.T) {
	target := newBridgeTarget(t)
	s := NewSession(&fakeMedia{}, SessionConfig{})
	b, err := StartBridge(BridgeConfig{Session: s, Listen: Outside, ListenAddr: ap("127.0.0.2:0"),
		Target: target.addrPort(), AllowFrom: netip.MustParseAddr("127.0.0.4")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// A stranger is refused.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9)}}
	if sc, err := d.Dial("tcp", b.Addr().String()); err == nil {
		sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := sc.Read(make([]byte, 1)); err == nil {
			t.Fatal("stranger's connection served")
		}
		sc.Close()
	}
	c := dialBridge(t, b, netip.MustParseAddr("127.0.0.4"))
	c.Write(AppendFrame(nil, olcPDU(t, olc(1, 1, "", "192.0.2.10:5001"))))
	in := target.accept(t)
	in.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := NewFrameReader(in, 0).Next()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := unicastAddrPort(decode(t, p).Request.OpenLogicalChannel.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters.MediaControlChannel)
	if got != ap("127.0.0.3:20001") {
		t.Fatalf("bridged OLC names %v", got)
	}
	in.Write(AppendFrame(nil, ackPDU(t, 1, 1, "10.0.0.1:7000", "10.0.0.1:7001")))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err = NewFrameReader(c, 0).Next()
	if err != nil {
		t.Fatal(err)
	}
	got, _ = unicastAddrPort(decode(t, p).Response.OpenLogicalChannelAck.ForwardMultiplexAckParameters.H2250LogicalChannelAckParameters.MediaChannel)
	if got != ap("127.0.0.2:10000") {
		t.Fatalf("bridged ack names %v", got)
	}
	b.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("open after Close")
	}
}

func FuzzRewritePDU(f *testing.F) {
	f.Add(olcPDU(f, olc(1, 1, "", "192.0.2.10:5001")))
	f.Add(olcPDU(f, olc(1, 0, "192.0.2.10:5000", "192.0.2.10:5001")))
	f.Add(ackPDU(f, 1, 1, "10.1.1.5:6000", "10.1.1.5:6001"))
	f.Add([]byte{0x00})
	f.Add(func() []byte {
		m := &h245.MultimediaSystemControlMessage{}
		m.Unmarshal(ackPDU(f, 1, 1, "192.168.1.20:5000", "192.168.1.20:5001"))
		h460.SetAckTraversal(m.Response.OpenLogicalChannelAck, &h460.TraversalParameters{KeepAlivePayloadType: 100, HasKeepAlivePayloadType: true})
		b, _ := m.Marshal()
		return b
	}())
	f.Fuzz(func(t *testing.T, b []byte) {
		s := NewSession(&fakeMedia{}, SessionConfig{})
		defer s.Close()
		// As the traversal server, the outside's OLCAck is read for its
		// traversal parameters first.
		ts := NewSession(&fakeMedia{}, SessionConfig{Traversal: Traversal{Enabled: true}})
		defer ts.Close()
		ts.RewritePDU(Inside, olcPDU(t, olc(1, 1, "", "10.1.1.5:6001")))
		if out, err := ts.RewritePDU(Outside, b); err == nil {
			var m h245.MultimediaSystemControlMessage
			if err := m.Unmarshal(out); err != nil {
				t.Fatalf("rewritten PDU does not decode: %v", err)
			}
		}
		for _, side := range []Side{Outside, Inside} {
			out, err := s.RewritePDU(side, b)
			if err != nil {
				continue
			}
			var m h245.MultimediaSystemControlMessage
			if err := m.Unmarshal(out); err != nil {
				t.Fatalf("rewritten PDU does not decode: %v", err)
			}
		}
		if olcs, err := s.RewriteFastStart(Outside, [][]byte{b}); err == nil {
			var o h245.OpenLogicalChannel
			if err := o.Unmarshal(olcs[0]); err != nil {
				t.Fatalf("rewritten fastStart does not decode: %v", err)
			}
		}
	})
}

func BenchmarkRewriteOLC(b *testing.B) {
	pdu := olcPDU(b, olc(1, 1, "", "192.0.2.10:5001"))
	s := NewSession(&fakeMedia{}, SessionConfig{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.RewritePDU(Outside, pdu); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTraversalParametersStripped: H.460.19 traversal parameters (they
// name one side's keep-alive and multiplexed media addresses) do not
// cross; other generic information does.
func TestTraversalParametersStripped(t *testing.T) {
	s := NewSession(&fakeMedia{}, SessionConfig{})
	o := olc(1, 1, "", "10.1.1.5:6001")
	keep := h245.GenericInformation{MessageIdentifier: h245.CapabilityIdentifier{Choice: h245.CapabilityIdentifier_Standard, Standard: asn1per.OID("0.0.8.239.2")}}
	o.GenericInformation = []h245.GenericInformation{
		{MessageIdentifier: h245.CapabilityIdentifier{Choice: h245.CapabilityIdentifier_Standard, Standard: asn1per.OID("0.0.8.460.19.0.1")},
			MessageContent: []h245.GenericParameter{{ParameterIdentifier: h245.ParameterIdentifier{Choice: h245.ParameterIdentifier_Standard, Standard: 1},
				ParameterValue: h245.ParameterValue{Choice: h245.ParameterValue_OctetString, OctetString: []byte{10, 1, 1, 5, 0x17, 0x71}}}},
			HasMessageContent: true},
		keep,
	}
	o.HasGenericInformation = true
	out, err := s.RewritePDU(Inside, olcPDU(t, o))
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, out).Request.OpenLogicalChannel.GenericInformation
	if len(got) != 1 || !bytes.Equal(got[0].MessageIdentifier.Standard, keep.MessageIdentifier.Standard) {
		t.Fatalf("generic information after rewrite: %+v", got)
	}
	if bytes.Contains(out, []byte{10, 1, 1, 5}) {
		t.Fatal("inside address crossed")
	}
}

// TestStreamCap: an endpoint opening channel after channel on new RTP
// sessions cannot make the relay allocate ports without bound.
func TestStreamCap(t *testing.T) {
	fm := &fakeMedia{}
	s := NewSession(fm, SessionConfig{})
	var err error
	for i := int64(1); i <= 40 && err == nil; i++ {
		_, err = s.RewritePDU(Outside, olcPDU(t, olc(i, i, "", "192.0.2.10:5001")))
	}
	if !errors.Is(err, ErrMedia) {
		t.Fatalf("40 sessions: %v", err)
	}
	if n := len(fm.streams); n != DefaultMaxStreams {
		t.Fatalf("%d streams allocated, cap %d", n, DefaultMaxStreams)
	}
}

// TestBridgeMalformed: a PDU that does not decode, or a frame over the
// cap, is reported once and closes the bridge's connections.
func TestBridgeMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"undecodable PDU", AppendFrame(nil, []byte{0xff, 0xff, 0xff})},
		{"frame over the cap", []byte{3, 0, 0x40, 0}},
		{"bad TPKT version", []byte{5, 0, 0, 8, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := newBridgeTarget(t)
			reported := make(chan Side, 2)
			b, err := StartBridge(BridgeConfig{Session: NewSession(&fakeMedia{}, SessionConfig{}), Listen: Outside,
				ListenAddr: ap("127.0.0.2:0"), Target: target.addrPort(), MaxFrame: 1024,
				OnMalformed: func(s Side, err error) { reported <- s }})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			c := dialBridge(t, b, netip.Addr{})
			in := target.accept(t)
			c.Write(tt.in)
			select {
			case s := <-reported:
				if s != Outside {
					t.Fatalf("reported side %v", s)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("not reported")
			}
			in.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := in.Read(make([]byte, 64)); err == nil {
				t.Fatalf("forwarded %d octets", n)
			}
		})
	}
}

// TestFastStartAnswerEchoesRelay: a callee accepting the caller's
// fastStart proposal for the channel toward the caller returns the
// proposal's mediaChannel, which Portico had set to the relay's own
// address on the callee's side (H.225.0 §8.1.7). That echo is not the
// callee's address: it must not replace the callee's RTP address the
// relay learnt (media toward the callee would go to the relay itself),
// and the caller gets its own address back.
func TestFastStartAnswerEchoesRelay(t *testing.T) {
	fm := &fakeMedia{}
	s := NewSession(fm, SessionConfig{Interfaces: [2]string{"external", "internal"}})
	enc := func(o *h245.OpenLogicalChannel) []byte {
		b, err := o.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The caller (outside) proposes its receive channel: RTP and RTCP in
	// the reverse parameters.
	recv := &h245.OpenLogicalChannel{ForwardLogicalChannelNumber: 2,
		ForwardLogicalChannelParameters: h245.OpenLogicalChannelForwardLogicalChannelParameters{
			DataType: h245.DataType{Choice: h245.DataType_NullData},
			MultiplexParameters: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters{
				Choice: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_None}},
		ReverseLogicalChannelParameters: &h245.OpenLogicalChannelReverseLogicalChannelParameters{DataType: audio(),
			MultiplexParameters: &h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters{
				Choice:                        h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
				H2250LogicalChannelParameters: h2250(1, "192.0.2.10:5000", "192.0.2.10:5001")}}}
	out, err := s.RewriteFastStart(Outside, [][]byte{enc(olc(1, 1, "", "192.0.2.10:5001")), enc(recv)})
	if err != nil {
		t.Fatal(err)
	}
	var prop h245.OpenLogicalChannel
	if err := prop.Unmarshal(out[1]); err != nil {
		t.Fatal(err)
	}
	// The callee (inside) answers: its receive RTP in the caller's
	// transmit channel, and the reverse channel as proposed (the relay's
	// inside address echoed) with its own RTCP.
	echo := prop.ReverseLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters
	echo.MediaControlChannel = newTransportAddress(ap("10.1.1.5:6001"))
	if _, err := s.RewriteFastStart(Inside, [][]byte{enc(olc(1, 1, "10.1.1.5:6000", "10.1.1.5:6001")), enc(&prop)}); err != nil {
		t.Fatal(err)
	}
	out, err = s.RewriteFastStart(Inside, [][]byte{enc(&prop)})
	if err != nil {
		t.Fatal(err)
	}
	if len(fm.streams) != 1 {
		t.Fatalf("%d streams, want 1", len(fm.streams))
	}
	st := fm.streams[0]
	if st.Remote[Inside] != ap("10.1.1.5:6000") || st.Remote[Outside] != ap("192.0.2.10:5000") {
		t.Fatalf("relay sends to %v inside and %v outside; want the endpoints' RTP addresses", st.Remote[Inside], st.Remote[Outside])
	}
	var back h245.OpenLogicalChannel
	if err := back.Unmarshal(out[0]); err != nil {
		t.Fatal(err)
	}
	if got, _ := unicastAddrPort(back.ReverseLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters.MediaChannel); got != ap("192.0.2.10:5000") {
		t.Errorf("the caller's echoed mediaChannel comes back as %v, want its own 192.0.2.10:5000", got)
	}
}

// TestTraversalServer: for an outside endpoint that offered H.460.19,
// every OpenLogicalChannel and OpenLogicalChannelAck sent to it carries
// the relay's outside RTP address of the channel's stream as
// keepAliveChannel, with payload type and interval; the inside's own
// traversal parameters never cross; the payload type the endpoint names
// in its OpenLogicalChannelAck is the one the relay recognises.
func TestTraversalServer(t *testing.T) {
	fm := &fakeMedia{}
	s := NewSession(fm, SessionConfig{Traversal: Traversal{Enabled: true, KeepAliveInterval: 5 * time.Second}})
	insideParams := func(o *h245.OpenLogicalChannel) {
		// What an inside H.460.19 client would send its own server: it must not leave.
		h460.SetOLCTraversal(o, &h460.TraversalParameters{KeepAliveChannel: newTransportAddress(ap("10.1.1.5:7000"))})
	}
	check := func(t *testing.T, gi []h245.GenericInformation, out []byte, want netip.AddrPort) {
		t.Helper()
		p, found, err := h460.Traversal(gi)
		if !found || err != nil {
			t.Fatalf("traversal parameters: found %v, %v", found, err)
		}
		if got, _ := unicastAddrPort(p.KeepAliveChannel); got != want || p.KeepAlivePayloadType != 127 || !p.HasKeepAlivePayloadType ||
			p.KeepAliveInterval != 5 || p.MultiplexedMediaChannel != nil || p.HasMultiplexID {
			t.Fatalf("traversal parameters %+v (keepAliveChannel %v), want keepAliveChannel %v, type 127, interval 5", p, got, want)
		}
		if bytes.Contains(out, []byte{10, 1, 1, 5}) {
			t.Fatal("inside address crossed")
		}
	}
	// Inside opens video toward the outside endpoint.
	o := olc(1, 2, "", "10.1.1.5:6001")
	insideParams(o)
	out, err := s.RewritePDU(Inside, olcPDU(t, o))
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, out).Request.OpenLogicalChannel
	check(t, got.GenericInformation, out, ap("127.0.0.2:10000"))
	if len(got.GenericInformation) != 1 {
		t.Fatalf("%d genericInformation elements", len(got.GenericInformation))
	}
	if st := fm.streams[0]; !st.KeepAlive[Outside].Enabled || st.KeepAlive[Outside].PayloadType != 127 || st.KeepAlive[Inside].Enabled {
		t.Fatalf("stream keep-alive %+v", st.KeepAlive)
	}
	// The endpoint acknowledges, naming its own keep-alive payload type.
	ack := &h245.MultimediaSystemControlMessage{}
	if err := ack.Unmarshal(ackPDU(t, 1, 2, "192.168.1.20:5000", "192.168.1.20:5001")); err != nil {
		t.Fatal(err)
	}
	a := ack.Response.OpenLogicalChannelAck
	h460.SetAckTraversal(a, &h460.TraversalParameters{KeepAlivePayloadType: 100, HasKeepAlivePayloadType: true})
	b, _ := ack.Marshal()
	out, err = s.RewritePDU(Outside, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, found, _ := h460.Traversal(decode(t, out).Response.OpenLogicalChannelAck.GenericInformation); found {
		t.Fatal("the outside endpoint's traversal parameters crossed inside")
	}
	if st := fm.streams[0]; st.KeepAlive[Outside].PayloadType != 100 {
		t.Fatalf("keep-alive payload type %d, want the endpoint's 100", st.KeepAlive[Outside].PayloadType)
	}
	// The outside endpoint opens audio; the inside's OLCAck gets the parameters.
	if _, err := s.RewritePDU(Outside, olcPDU(t, olc(1, 1, "", "192.168.1.20:5003"))); err != nil {
		t.Fatal(err)
	}
	ack = &h245.MultimediaSystemControlMessage{}
	if err := ack.Unmarshal(ackPDU(t, 1, 1, "10.1.1.5:6002", "10.1.1.5:6003")); err != nil {
		t.Fatal(err)
	}
	h460.SetAckTraversal(ack.Response.OpenLogicalChannelAck, &h460.TraversalParameters{KeepAliveChannel: newTransportAddress(ap("10.1.1.5:7000"))})
	b, _ = ack.Marshal()
	out, err = s.RewritePDU(Inside, b)
	if err != nil {
		t.Fatal(err)
	}
	check(t, decode(t, out).Response.OpenLogicalChannelAck.GenericInformation, out, ap("127.0.0.2:10010"))

	// Toward the inside, and without traversal, nothing is added.
	plain := NewSession(&fakeMedia{}, SessionConfig{})
	out, err = plain.RewritePDU(Inside, olcPDU(t, olc(1, 2, "", "10.1.1.5:6001")))
	if err != nil {
		t.Fatal(err)
	}
	if decode(t, out).Request.OpenLogicalChannel.HasGenericInformation {
		t.Fatal("traversal parameters sent to an endpoint that did not offer H.460.19")
	}
	out, err = s.RewritePDU(Outside, olcPDU(t, olc(2, 3, "", "192.168.1.20:5005")))
	if err != nil {
		t.Fatal(err)
	}
	if decode(t, out).Request.OpenLogicalChannel.HasGenericInformation {
		t.Fatal("traversal parameters sent inside")
	}
}

// TestTraversalMultiplexed: to an endpoint that can transmit multiplexed
// media, the relay's multiplexed ports and the stream's multiplexID are
// offered (the multiplexed RTP port is the keepAliveChannel); a
// multiplexID the endpoint names in its own parameters is the prefix of
// what the relay sends it; neither crosses inside.
func TestTraversalMultiplexed(t *testing.T) {
	fm := &fakeMedia{}
	s := NewSession(fm, SessionConfig{Traversal: Traversal{Enabled: true, Multiplex: true}})
	out, err := s.RewritePDU(Inside, olcPDU(t, olc(1, 1, "", "10.1.1.5:6001")))
	if err != nil {
		t.Fatal(err)
	}
	p, found, err := h460.Traversal(decode(t, out).Request.OpenLogicalChannel.GenericInformation)
	if !found || err != nil {
		t.Fatalf("found %v, %v", found, err)
	}
	mm, _ := unicastAddrPort(p.MultiplexedMediaChannel)
	mc, _ := unicastAddrPort(p.MultiplexedMediaControlChannel)
	ka, _ := unicastAddrPort(p.KeepAliveChannel)
	if mm != ap("127.0.0.2:9000") || mc != ap("127.0.0.2:9001") || ka != mm || !p.HasMultiplexID || p.MultiplexID != 1000 {
		t.Fatalf("multiplexed %v %v id %d, keep-alive %v", mm, mc, p.MultiplexID, ka)
	}
	if !fm.streams[0].Multiplex[Outside] || fm.streams[0].Multiplex[Inside] {
		t.Fatalf("stream multiplex %v", fm.streams[0].Multiplex)
	}
	// A fastStart answer echoing Portico's own parameters is no request.
	echo := olc(1, 1, "", "192.168.1.20:5001")
	h460.SetOLCTraversal(echo, &p)
	if _, err := s.RewritePDU(Outside, olcPDU(t, echo)); err != nil {
		t.Fatal(err)
	}
	if fm.streams[0].MultiplexSend[Outside] != 0 {
		t.Fatalf("the relay's own multiplexID taken as the endpoint's: %v", fm.streams[0].MultiplexSend)
	}
	// The endpoint opens its own channel on the same session, asking for
	// multiplexed reception (as h323plus does in its OLC).
	o := olc(2, 1, "", "192.168.1.20:5001")
	h460.SetOLCTraversal(o, &h460.TraversalParameters{MultiplexedMediaChannel: newTransportAddress(ap("192.168.1.20:5000")),
		MultiplexedMediaControlChannel: newTransportAddress(ap("192.168.1.20:5001")), MultiplexID: 269646, HasMultiplexID: true})
	out, err = s.RewritePDU(Outside, olcPDU(t, o))
	if err != nil {
		t.Fatal(err)
	}
	if decode(t, out).Request.OpenLogicalChannel.HasGenericInformation || bytes.Contains(out, []byte{192, 168, 1, 20}) {
		t.Fatal("the endpoint's traversal parameters crossed inside")
	}
	if len(fm.streams) != 1 || fm.streams[0].MultiplexSend[Outside] != 269646 {
		t.Fatalf("streams %d, multiplexSend %v", len(fm.streams), fm.streams[0].MultiplexSend)
	}
}

// TestEnableMultiplex: multiplexing offered once the endpoint said it can
// transmit multiplexed media applies to the RTP sessions opened after;
// one already open keeps its own port (where the endpoint's keep-alives
// went).
func TestEnableMultiplex(t *testing.T) {
	fm := &fakeMedia{}
	s := NewSession(fm, SessionConfig{Traversal: Traversal{Enabled: true}})
	if _, err := s.RewritePDU(Inside, olcPDU(t, olc(1, 1, "", "10.1.1.5:6001"))); err != nil {
		t.Fatal(err)
	}
	s.EnableMultiplex()
	out, err := s.RewritePDU(Inside, olcPDU(t, olc(2, 2, "", "10.1.1.5:6003")))
	if err != nil {
		t.Fatal(err)
	}
	if fm.streams[0].Multiplex[Outside] || !fm.streams[1].Multiplex[Outside] {
		t.Fatalf("multiplex per stream: %v, %v; want the second only", fm.streams[0].Multiplex, fm.streams[1].Multiplex)
	}
	p, _, _ := h460.Traversal(decode(t, out).Request.OpenLogicalChannel.GenericInformation)
	if !p.HasMultiplexID || p.MultiplexID != 1001 {
		t.Fatalf("second session's parameters %+v", p)
	}
	out, err = s.RewritePDU(Inside, olcPDU(t, olc(3, 1, "", "10.1.1.5:6001")))
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := h460.Traversal(decode(t, out).Request.OpenLogicalChannel.GenericInformation); p.HasMultiplexID {
		t.Fatal("the session already open is offered multiplexing")
	}
	plain := NewSession(&fakeMedia{}, SessionConfig{})
	plain.EnableMultiplex()
	if plain.cfg.Traversal.Multiplex {
		t.Fatal("multiplexing without traversal")
	}
}
