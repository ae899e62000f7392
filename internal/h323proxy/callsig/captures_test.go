package callsig

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestCapturedMessages forwards every call-signalling message of the
// reference captures (real endpoints: ooh323c, the nDPI and Wireshark
// samples) from the outside through a call and checks what reaches the
// inside: it parses, its UUIE decodes, and every transport address in
// it (h245Address, call-signalling addresses, fastStart and tunnelled
// media addresses) is Portico's inside one.
func TestCapturedMessages(t *testing.T) {
	testpeer.Require(t, "tshark")
	files := capture.Captures(t)
	s := fuzzServer(t)
	total := 0
	for _, file := range files {
		for _, p := range capture.TPKTPackets(t, file, "tcp.port==1720 && tcp.len>0 && !tcp.analysis.retransmission") {
			if p.Partial || p.Malformed {
				continue
			}
			t.Run(filepath.Base(file)+"/"+strconv.Itoa(p.Frame), func(t *testing.T) {
				a, b := &streamConn{in: bytes.NewReader(nil)}, &streamConn{in: bytes.NewReader(nil)}
				c := &call{srv: s, crv: 42, bridges: map[netip.AddrPort]*h245proxy.Bridge{}}
				if m, err := q931.Parse(p.Payload); err == nil {
					c.crv = m.CallRef // one call per connection: the captured call's
				}
				c.legs[Outside], c.legs[Inside] = newLeg(a, nil, 0), newLeg(b, nil, 0)
				c.media = h245proxy.NewSession(&nullMedia{}, h245proxy.SessionConfig{})
				s.active.Add(1)
				ok := c.forward(Outside, p.Payload)
				c.finish()
				if a.out.Len() > 0 {
					t.Fatalf("answered the sender (forward %v): % x", ok, a.out.Bytes())
				}
				out, err := h245proxy.NewFrameReader(bytes.NewReader(b.out.Bytes()), 0).Next()
				if err != nil {
					t.Fatalf("nothing forwarded: %v", err)
				}
				m, err := q931.Parse(out)
				if err != nil {
					t.Fatal(err)
				}
				if _, present := m.Get(q931.IEUserUser); !present {
					return
				}
				ui, err := decodeUU(m)
				if err != nil {
					t.Fatal(err)
				}
				checkInsideAddresses(t, ui)
				total++
			})
		}
	}
	if total < 10 {
		t.Fatalf("only %d captured messages with UUIE forwarded", total)
	}
}

// checkInsideAddresses requires every IP address in ui to be Portico's
// inside one (127.0.0.3).
func checkInsideAddresses(t *testing.T, ui *h225.H323UserInformation) {
	t.Helper()
	f := bodyFields(&ui.H323UuPdu.H323MessageBody)
	for _, ta := range []*(*h225.TransportAddress){f.h245Address, f.srcSignal} {
		if ta != nil && *ta != nil {
			if a, err := ras.AddrPort(*ta); err == nil && a.Addr() != porticoIn {
				t.Errorf("transport address %v", a)
			}
		}
	}
	var olcs []*h245.OpenLogicalChannel
	if f.fastStart != nil {
		for _, e := range *f.fastStart {
			var o h245.OpenLogicalChannel
			if err := o.Unmarshal(e); err != nil {
				t.Fatal(err)
			}
			olcs = append(olcs, &o)
		}
	}
	for _, e := range ui.H323UuPdu.H245Control {
		var m h245.MultimediaSystemControlMessage
		if err := m.Unmarshal(e); err != nil {
			t.Fatal(err)
		}
		if m.Request != nil && m.Request.OpenLogicalChannel != nil {
			olcs = append(olcs, m.Request.OpenLogicalChannel)
		}
		if m.Response != nil && m.Response.OpenLogicalChannelAck != nil {
			if fm := m.Response.OpenLogicalChannelAck.ForwardMultiplexAckParameters; fm != nil && fm.H2250LogicalChannelAckParameters != nil {
				checkMedia(t, fm.H2250LogicalChannelAckParameters.MediaChannel, fm.H2250LogicalChannelAckParameters.MediaControlChannel)
			}
		}
	}
	for _, o := range olcs {
		if p := o.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters; p != nil {
			checkMedia(t, p.MediaChannel, p.MediaControlChannel)
		}
		if r := o.ReverseLogicalChannelParameters; r != nil && r.MultiplexParameters != nil && r.MultiplexParameters.H2250LogicalChannelParameters != nil {
			checkMedia(t, r.MultiplexParameters.H2250LogicalChannelParameters.MediaChannel, r.MultiplexParameters.H2250LogicalChannelParameters.MediaControlChannel)
		}
	}
}

func checkMedia(t *testing.T, tas ...*h245.TransportAddress) {
	t.Helper()
	for _, ta := range tas {
		if ta == nil || ta.UnicastAddress == nil || ta.UnicastAddress.IPAddress == nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(ta.UnicastAddress.IPAddress.Network)
		if ip != porticoIn {
			t.Errorf("media address %v", ip)
		}
	}
}
