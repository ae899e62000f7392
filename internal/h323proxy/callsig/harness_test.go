package callsig

// The peers in these tests are minimal scripted H.323 endpoints built on
// the codec: they stand in for real products (no H.323 endpoint or
// gatekeeper is packaged in Debian), sending what an endpoint with
// fastStart and H.245 tunnelling sends.

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/store"
)

// Addresses: Portico's outside 127.0.0.2 and inside 127.0.0.3, the
// outside endpoint 127.0.0.4, inside endpoints (the network Portico
// hides) 127.0.1.5.
var (
	porticoOut = netip.MustParseAddr("127.0.0.2")
	porticoIn  = netip.MustParseAddr("127.0.0.3")
	outsideEP  = netip.MustParseAddr("127.0.0.4")
	insideEP   = netip.MustParseAddr("127.0.1.5")
)

var portBase struct {
	mu   sync.Mutex
	next int
}

// mediaPorts hands each relay its own port range.
func mediaPorts() int {
	portBase.mu.Lock()
	defer portBase.mu.Unlock()
	if portBase.next == 0 {
		portBase.next = (os.Getpid() % 150) * 200
	}
	// Blocks of 200 in 30000-59999, wrapping around: a package with many
	// calls would otherwise run past the last port.
	lo := 30000 + portBase.next%30000
	portBase.next += 200
	return lo
}

type history struct {
	mu   sync.Mutex
	recs []store.CallRecord
	ch   chan store.CallRecord
}

func (h *history) add(r store.CallRecord) {
	h.mu.Lock()
	h.recs = append(h.recs, r)
	h.mu.Unlock()
	h.ch <- r
}

func (h *history) next(t testing.TB) store.CallRecord {
	t.Helper()
	select {
	case r := <-h.ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no history record")
	}
	return store.CallRecord{}
}

type portico struct {
	srv       *Server
	relay     *media.Relay
	hist      *history
	outAddr   netip.AddrPort // call-signalling listener outside
	inAddr    netip.AddrPort
	route     netip.AddrPort
	deny      bool
	mu        sync.Mutex
	registry  map[string]Endpoint
	routes    map[string]netip.AddrPort // by called alias, before route
	outsideLn *connlimit.Listener
}

func (p *portico) Outside(alias string) (Endpoint, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ep, ok := p.registry[alias]
	return ep, ok
}

func startPortico(t testing.TB, cfg Config, opts ...func(*Deps)) *portico {
	t.Helper()
	lo := mediaPorts()
	relay, err := media.New(media.Config{Interfaces: map[string]media.InterfaceConfig{
		"external": {Addr: porticoOut, PortMin: lo, PortMax: lo + 99},
		"internal": {Addr: porticoIn, PortMin: lo + 100, PortMax: lo + 199},
	}, Latching: media.LatchNAT}, media.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	go func() { relay.Run(ctx); close(relayDone) }()
	p := &portico{relay: relay, hist: &history{ch: make(chan store.CallRecord, 1000)}, registry: map[string]Endpoint{}, routes: map[string]netip.AddrPort{}}
	cfg.Sides = [2]SideConfig{{Bind: porticoOut, Interface: "external", H245Ports: cfg.Sides[Outside].H245Ports},
		{Bind: porticoIn, Interface: "internal", H245Ports: cfg.Sides[Inside].H245Ports}}
	deps := Deps{
		Media: relay,
		Route: func(ctx context.Context, s *h225.SetupUUIE, info CallInfo) (netip.AddrPort, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if len(info.To) > 0 {
				if r, ok := p.routes[info.To[0]]; ok {
					return r, nil
				}
			}
			if !p.route.IsValid() {
				return netip.AddrPort{}, ErrNoRoute
			}
			return p.route, nil
		},
		Policy: func(info CallInfo) Decision {
			p.mu.Lock()
			defer p.mu.Unlock()
			return Decision{Allow: !p.deny, CallType: "guest"}
		},
		Registry: p,
		History:  p.hist.add,
	}
	for _, o := range opts {
		o(&deps)
	}
	p.srv, err = New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	p.outsideLn, err = p.srv.Listen(netip.AddrPortFrom(porticoOut, 0), connlimit.Config{Name: "h323-test", MaxConnsPerSource: 200, IdleTimeout: time.Minute}, connlimit.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	outLn := p.outsideLn
	inLn, err := net.Listen("tcp", netip.AddrPortFrom(porticoIn, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	p.outAddr = netip.MustParseAddrPort(outLn.Addr().String())
	p.inAddr = netip.MustParseAddrPort(inLn.Addr().String())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.srv.Serve(ctx, p.outsideLn, Outside) }()
	go func() { defer wg.Done(); p.srv.Serve(ctx, inLn, Inside) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		p.srv.Close()
		<-relayDone
		relay.Close()
	})
	return p
}

// endpoint is a scripted H.323 endpoint on one TCP connection.
type endpoint struct {
	t    testing.TB
	conn net.Conn
	fr   *h245proxy.FrameReader
	crv  uint32
	// got holds every payload received, for the topology check.
	got [][]byte
}

func dialFrom(t testing.TB, src netip.Addr, dst netip.AddrPort) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", dst.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newEndpoint(t testing.TB, c net.Conn) *endpoint {
	return &endpoint{t: t, conn: c, fr: h245proxy.NewFrameReader(c, 0), crv: 42}
}

func (e *endpoint) sendRaw(payload []byte) {
	e.t.Helper()
	if _, err := e.conn.Write(h245proxy.AppendFrame(nil, payload)); err != nil {
		e.t.Fatalf("send: %v", err)
	}
}

func (e *endpoint) send(typ byte, fromDest bool, ui *h225.H323UserInformation, ies ...func(*q931.Message)) {
	e.t.Helper()
	uu, err := ui.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	m := &q931.Message{CallRefLen: 2, CallRef: e.crv, FromDestination: fromDest, Type: typ}
	if typ == q931.Setup {
		m.Set(q931.IEBearerCapability, q931.BearerVideo)
	}
	for _, f := range ies {
		f(m)
	}
	m.SetUserUser(uu)
	b, err := m.Append(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.sendRaw(b)
}

// recv returns the next message; it fails the test on error.
func (e *endpoint) recv() (*q931.Message, *h225.H323UserInformation) {
	e.t.Helper()
	m, ui, err := e.tryRecv()
	if err != nil {
		e.t.Fatalf("recv: %v", err)
	}
	return m, ui
}

func (e *endpoint) tryRecv() (*q931.Message, *h225.H323UserInformation, error) {
	e.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := e.fr.Next()
	if err != nil {
		return nil, nil, err
	}
	raw := append([]byte(nil), p...)
	e.got = append(e.got, raw)
	m, err := q931.Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	ui, err := decodeUU(m)
	if err != nil {
		return m, nil, err
	}
	return m, ui, nil
}

func (e *endpoint) expect(typ byte) (*q931.Message, *h225.H323UserInformation) {
	e.t.Helper()
	m, ui := e.recv()
	if m.Type != typ {
		e.t.Fatalf("got message type %#x, want %#x", m.Type, typ)
	}
	return m, ui
}

// cause returns the Q.931 cause of a ReleaseComplete.
func cause(t testing.TB, m *q931.Message) byte {
	t.Helper()
	c, err := m.Cause()
	if err != nil {
		t.Fatalf("cause: %v", err)
	}
	return c.Value
}

func ta245(ap netip.AddrPort) *h245.TransportAddress {
	ip := ap.Addr().As4()
	return &h245.TransportAddress{Choice: h245.TransportAddress_UnicastAddress,
		UnicastAddress: &h245.UnicastAddress{Choice: h245.UnicastAddress_IPAddress,
			IPAddress: &h245.UnicastAddressIPAddress{Network: ip[:], TsapIdentifier: int64(ap.Port())}}}
}

func addr245(t testing.TB, a *h245.TransportAddress) netip.AddrPort {
	t.Helper()
	if a == nil || a.UnicastAddress == nil || a.UnicastAddress.IPAddress == nil {
		t.Fatalf("no IPv4 unicast address: %+v", a)
	}
	ip, _ := netip.AddrFromSlice(a.UnicastAddress.IPAddress.Network)
	return netip.AddrPortFrom(ip, uint16(a.UnicastAddress.IPAddress.TsapIdentifier))
}

func g711() h245.DataType {
	return h245.DataType{Choice: h245.DataType_AudioData,
		AudioData: &h245.AudioCapability{Choice: h245.AudioCapability_G711Ulaw64k, G711Ulaw64k: 20}}
}

func h261() h245.DataType {
	return h245.DataType{Choice: h245.DataType_VideoData,
		VideoData: &h245.VideoCapability{Choice: h245.VideoCapability_H261VideoCapability,
			H261VideoCapability: &h245.H261VideoCapability{CifMPI: 1, HasCifMPI: true, MaxBitRate: 3840}}}
}

func h2250(session int64, rtp, rtcp netip.AddrPort) *h245.H2250LogicalChannelParameters {
	p := &h245.H2250LogicalChannelParameters{SessionID: session}
	if rtp.IsValid() {
		p.MediaChannel = ta245(rtp)
	}
	if rtcp.IsValid() {
		p.MediaControlChannel = ta245(rtcp)
	}
	return p
}

// olcTx is an OLC for a channel the sender transmits on (RTCP address only).
func olcTx(lcn int64, session int64, dt h245.DataType, rtp, rtcp netip.AddrPort) *h245.OpenLogicalChannel {
	return &h245.OpenLogicalChannel{
		ForwardLogicalChannelNumber: h245.LogicalChannelNumber(lcn),
		ForwardLogicalChannelParameters: h245.OpenLogicalChannelForwardLogicalChannelParameters{
			DataType: dt,
			MultiplexParameters: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters{
				Choice:                        h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
				H2250LogicalChannelParameters: h2250(session, rtp, rtcp),
			},
		},
	}
}

// olcRx is a fastStart proposal for a channel the sender receives on.
func olcRx(lcn int64, session int64, dt h245.DataType, rtp, rtcp netip.AddrPort) *h245.OpenLogicalChannel {
	o := olcTx(lcn, session, h245.DataType{Choice: h245.DataType_NullData}, netip.AddrPort{}, netip.AddrPort{})
	o.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters = &h245.H2250LogicalChannelParameters{SessionID: session}
	o.ReverseLogicalChannelParameters = &h245.OpenLogicalChannelReverseLogicalChannelParameters{
		DataType: dt,
		MultiplexParameters: &h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters{
			Choice:                        h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
			H2250LogicalChannelParameters: h2250(session, rtp, rtcp),
		},
	}
	return o
}

func encOLC(t testing.TB, olcs ...*h245.OpenLogicalChannel) [][]byte {
	t.Helper()
	var out [][]byte
	for _, o := range olcs {
		b, err := o.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func decOLC(t testing.TB, b []byte) *h245.OpenLogicalChannel {
	t.Helper()
	var o h245.OpenLogicalChannel
	if err := o.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return &o
}

func pdu(t testing.TB, m *h245.MultimediaSystemControlMessage) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func olcMsg(o *h245.OpenLogicalChannel) *h245.MultimediaSystemControlMessage {
	return &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Request,
		Request: &h245.RequestMessage{Choice: h245.RequestMessage_OpenLogicalChannel, OpenLogicalChannel: o}}
}

func olcAckMsg(lcn int64, session int64, rtp, rtcp netip.AddrPort) *h245.MultimediaSystemControlMessage {
	return &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Response,
		Response: &h245.ResponseMessage{Choice: h245.ResponseMessage_OpenLogicalChannelAck, OpenLogicalChannelAck: &h245.OpenLogicalChannelAck{
			ForwardLogicalChannelNumber: h245.LogicalChannelNumber(lcn),
			ForwardMultiplexAckParameters: &h245.OpenLogicalChannelAckForwardMultiplexAckParameters{
				Choice: h245.OpenLogicalChannelAckForwardMultiplexAckParameters_H2250LogicalChannelAckParameters,
				H2250LogicalChannelAckParameters: &h245.H2250LogicalChannelAckParameters{
					SessionID: session, HasSessionID: true, MediaChannel: ta245(rtp), MediaControlChannel: ta245(rtcp)},
			}}}}
}

func decPDU(t testing.TB, b []byte) *h245.MultimediaSystemControlMessage {
	t.Helper()
	var m h245.MultimediaSystemControlMessage
	if err := m.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return &m
}

var callSeq struct {
	mu sync.Mutex
	n  byte
}

func newCallID() []byte {
	callSeq.mu.Lock()
	defer callSeq.mu.Unlock()
	callSeq.n++
	id := make([]byte, 16)
	id[0], id[15] = 0xca, callSeq.n
	binary.BigEndian.PutUint32(id[4:], uint32(os.Getpid()))
	return id
}

// setupUI is a Setup to dest with fastStart proposals and tunnelling.
func setupUI(dest string, callID []byte, src netip.AddrPort, h245Addr netip.AddrPort, fast [][]byte) *h225.H323UserInformation {
	v := ras.Vendor()
	ssa := ras.Transport(src)
	s := &h225.SetupUUIE{
		ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV4),
		SourceAddress:      []h225.AliasAddress{ras.H323ID("guest-1")}, HasSourceAddress: true,
		SourceInfo:         h225.EndpointType{Vendor: &v, Terminal: &h225.TerminalInfo{}},
		DestinationAddress: []h225.AliasAddress{ras.E164(dest)}, HasDestinationAddress: true,
		ConferenceID:            h225.ConferenceIdentifier(callID),
		ConferenceGoal:          h225.SetupUUIEConferenceGoal{Choice: h225.SetupUUIEConferenceGoal_Create},
		CallType:                h225.CallType{Choice: h225.CallType_PointToPoint},
		SourceCallSignalAddress: &ssa,
		CallIdentifier:          &h225.CallIdentifier{Guid: h225.GloballyUniqueID(callID)},
		HasMediaWaitForConnect:  true, HasCanOverlapSend: true, HasMultipleCalls: true, HasMaintainConnection: true,
	}
	if len(fast) > 0 {
		s.FastStart, s.HasFastStart = fast, true
	}
	if h245Addr.IsValid() {
		t := ras.Transport(h245Addr)
		s.H245Address = &t
	}
	return &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{
		H323MessageBody: h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_Setup, Setup: s},
		H245Tunnelling:  true, HasH245Tunnelling: true,
	}}
}

func answerUI(kind int, callID []byte, h245Addr netip.AddrPort, fast [][]byte, tunnelled ...[]byte) *h225.H323UserInformation {
	v := ras.Vendor()
	et := h225.EndpointType{Vendor: &v, Terminal: &h225.TerminalInfo{}}
	cid := &h225.CallIdentifier{Guid: h225.GloballyUniqueID(callID)}
	var h *h225.TransportAddress
	if h245Addr.IsValid() {
		t := ras.Transport(h245Addr)
		h = &t
	}
	b := h225.H323UUPDUH323MessageBody{Choice: kind}
	pv := h225.ProtocolIdentifier(h225.ProtocolV4)
	switch kind {
	case h225.H323UUPDUH323MessageBody_CallProceeding:
		b.CallProceeding = &h225.CallProceedingUUIE{ProtocolIdentifier: pv, DestinationInfo: et, CallIdentifier: cid, H245Address: h,
			FastStart: fast, HasFastStart: len(fast) > 0}
	case h225.H323UUPDUH323MessageBody_Alerting:
		b.Alerting = &h225.AlertingUUIE{ProtocolIdentifier: pv, DestinationInfo: et, CallIdentifier: cid, H245Address: h,
			FastStart: fast, HasFastStart: len(fast) > 0}
	case h225.H323UUPDUH323MessageBody_Connect:
		b.Connect = &h225.ConnectUUIE{ProtocolIdentifier: pv, DestinationInfo: et, CallIdentifier: cid, H245Address: h,
			ConferenceID: h225.ConferenceIdentifier(callID), FastStart: fast, HasFastStart: len(fast) > 0}
	case h225.H323UUPDUH323MessageBody_Facility:
		b.Facility = &h225.FacilityUUIE{ProtocolIdentifier: pv, CallIdentifier: cid, H245Address: h,
			Reason: h225.FacilityReason{Choice: h225.FacilityReason_UndefinedReason}}
	case h225.H323UUPDUH323MessageBody_ReleaseComplete:
		b.ReleaseComplete = &h225.ReleaseCompleteUUIE{ProtocolIdentifier: pv, CallIdentifier: cid}
	}
	ui := &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{H323MessageBody: b, H245Tunnelling: true, HasH245Tunnelling: true}}
	if len(tunnelled) > 0 {
		ui.H323UuPdu.H245Control, ui.H323UuPdu.HasH245Control = tunnelled, true
	}
	return ui
}

func withCause(c byte) func(*q931.Message) {
	return func(m *q931.Message) { m.SetCause(q931.Cause{Value: c}) }
}

// udp opens an RTP socket on ip.
func udp(t testing.TB, ip netip.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func udpAddr(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// rtpFlow sends RTP packets from src to dst until want of them arrived at
// rcv (bounded: at most 500 sent) and returns how many arrived.
func rtpFlow(t testing.TB, src *net.UDPConn, dst netip.AddrPort, rcv *net.UDPConn, want int) int {
	t.Helper()
	ssrc := uint32(0x1000) + uint32(udpAddr(src).Port())
	got := 0
	buf := make([]byte, 1500)
	for seq := 0; seq < 500 && got < want; seq++ {
		pkt := make([]byte, 12+160)
		pkt[0], pkt[1] = 0x80, 0
		binary.BigEndian.PutUint16(pkt[2:], uint16(seq))
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq*160))
		binary.BigEndian.PutUint32(pkt[8:], ssrc)
		if _, err := src.WriteToUDPAddrPort(pkt, dst); err != nil {
			t.Fatal(err)
		}
		rcv.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			n, _, err := rcv.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if n == len(pkt) && binary.BigEndian.Uint32(buf[8:]) == ssrc {
				got++
			}
		}
	}
	return got
}

// leaks reports whether any payload holds ip's four octets.
func leaks(payloads [][]byte, ips ...netip.Addr) (netip.Addr, bool) {
	for _, p := range payloads {
		for _, ip := range ips {
			b := ip.As4()
			if bytes.Contains(p, b[:]) {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

func listenTCP(t testing.TB, ip netip.Addr) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func accept(t testing.TB, l net.Listener) net.Conn {
	t.Helper()
	l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func lnAddr(l net.Listener) netip.AddrPort { return netip.MustParseAddrPort(l.Addr().String()) }

func deadline() time.Time { return time.Now().Add(10 * time.Second) }

// routeTo routes calls from outside to a new inside callee listener.
func routeTo(t testing.TB, p *portico) net.Listener {
	t.Helper()
	l := listenTCP(t, insideEP)
	p.mu.Lock()
	p.route = lnAddr(l)
	p.mu.Unlock()
	return l
}

// placeCall sends a Setup without fastStart from outside to portico and
// returns the caller and the callee that received it.
func placeCall(t testing.TB, portico netip.AddrPort, calleeLn net.Listener, callID []byte) (caller, callee *endpoint) {
	t.Helper()
	caller = newEndpoint(t, dialFrom(t, outsideEP, portico))
	caller.send(q931.Setup, false, setupUI("1000", callID, netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, nil))
	callee = newEndpoint(t, accept(t, calleeLn))
	callee.expect(q931.Setup)
	return caller, callee
}
