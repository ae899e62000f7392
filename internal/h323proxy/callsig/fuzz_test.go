package callsig

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/media"
)

// streamConn is a connection whose peer sent in and then closed; what
// Portico writes is collected in out.
type streamConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *streamConn) Read(b []byte) (int, error)  { return c.in.Read(b) }
func (c *streamConn) Write(b []byte) (int, error) { return c.out.Write(b) }
func (c *streamConn) Close() error                { return nil }
func (c *streamConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 1720}
}
func (c *streamConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 4), Port: 40000}
}
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// nullMedia allocates nothing real.
type nullMedia struct{}

func (m *nullMedia) infos(n int) []media.StreamInfo {
	out := make([]media.StreamInfo, n)
	for i := range out {
		out[i].Local = [2]netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:10000"), netip.MustParseAddrPort("127.0.0.3:20000")}
		out[i].LocalRTCP = [2]netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:10001"), netip.MustParseAddrPort("127.0.0.3:20001")}
	}
	return out
}
func (m *nullMedia) Allocate(sc media.SessionConfig) (media.SessionID, []media.StreamInfo, error) {
	return 1, m.infos(len(sc.Streams)), nil
}
func (m *nullMedia) Update(id media.SessionID, s []media.StreamConfig) ([]media.StreamInfo, error) {
	return m.infos(len(s)), nil
}
func (m *nullMedia) Release(media.SessionID) (media.SessionStats, error) {
	return media.SessionStats{}, nil
}

func fuzzServer(t testing.TB) *Server {
	s, err := New(Config{Sides: [2]SideConfig{{Bind: porticoOut}, {Bind: porticoIn}}, MaxFrame: 4096},
		Deps{Media: &nullMedia{}, Route: func(context.Context, *h225.SetupUUIE, CallInfo) (netip.AddrPort, error) {
			return netip.AddrPort{}, ErrNoRoute
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkReplies requires what Portico wrote to be TPKT frames holding
// ReleaseComplete messages only.
func checkReplies(t *testing.T, out []byte) {
	r := h245proxy.NewFrameReader(bytes.NewReader(out), 0)
	for {
		p, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("reply framing: %v", err)
		}
		m, err := q931.Parse(p)
		if err != nil || m.Type != q931.ReleaseComplete {
			t.Fatalf("reply is not a ReleaseComplete: %v", err)
		}
		if _, err := decodeUU(m); err != nil {
			t.Fatalf("reply UUIE: %v", err)
		}
	}
}

// FuzzStream feeds arbitrary bytes to the call-signalling entry point as
// a new outside connection.
func FuzzStream(f *testing.F) {
	setup, _ := setupUI("1000", newCallID(), netip.AddrPortFrom(outsideEP, 1720), netip.AddrPortFrom(outsideEP, 1721), nil).Marshal()
	m := &q931.Message{CallRefLen: 2, CallRef: 42, Type: q931.Setup}
	m.SetUserUser(setup)
	b, _ := m.Append(nil)
	f.Add(tpkt(b))
	f.Add(append([]byte{3, 0, 0, 4}, tpkt(b)...))
	f.Add([]byte{3, 0, 0, 9, 0x08, 2, 0, 7, 0x62})
	f.Add([]byte{3, 0, 0xff, 0xff})
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &streamConn{in: bytes.NewReader(in)}
		s.handle(c, Outside, nil)
		checkReplies(t, c.out.Bytes())
	})
}

// FuzzForward feeds arbitrary Q.931 payloads through a call in progress:
// the rewrite must never panic, and what it forwards must decode.
func FuzzForward(f *testing.F) {
	id := newCallID()
	fast := encOLC(f, olcTx(1, 1, g711(), netip.AddrPort{}, netip.MustParseAddrPort("192.0.2.1:5001")))
	video := pdu(f, olcMsg(olcTx(3, 2, h261(), netip.AddrPort{}, netip.MustParseAddrPort("192.0.2.1:5003"))))
	for _, ui := range []*h225.H323UserInformation{
		setupUI("1000", id, netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, fast),
		answerUI(h225.H323UUPDUH323MessageBody_Connect, id, netip.AddrPort{}, fast, video),
		answerUI(h225.H323UUPDUH323MessageBody_Facility, id, netip.AddrPort{}, nil, video),
	} {
		uu, err := ui.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		m := &q931.Message{CallRefLen: 2, CallRef: 42, Type: q931.Connect}
		m.SetUserUser(uu)
		b, _ := m.Append(nil)
		f.Add(b)
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := &streamConn{in: bytes.NewReader(nil)}, &streamConn{in: bytes.NewReader(nil)}
		c := &call{srv: s, crv: 42, bridges: map[netip.AddrPort]*h245proxy.Bridge{}}
		if m, err := q931.Parse(in); err == nil {
			c.crv = m.CallRef
		}
		c.legs[Outside], c.legs[Inside] = newLeg(a, nil, 0), newLeg(b, nil, 0)
		c.media = h245proxy.NewSession(&nullMedia{}, h245proxy.SessionConfig{})
		s.active.Add(1)
		c.forward(Outside, in)
		c.finish()
		r := h245proxy.NewFrameReader(bytes.NewReader(b.out.Bytes()), 0)
		for {
			p, err := r.Next()
			if err != nil {
				break
			}
			m, err := q931.Parse(p)
			if err != nil {
				t.Fatalf("forwarded message does not parse: %v", err)
			}
			if _, present := m.Get(q931.IEUserUser); present {
				if _, err := decodeUU(m); err != nil {
					t.Fatalf("forwarded UUIE does not decode: %v", err)
				}
			}
		}
		checkReplies(t, a.out.Bytes())
	})
}
