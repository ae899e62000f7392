package h460_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/h460"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/testpeer"
)

func ta(s string) *h245.TransportAddress {
	t := h245.NewTransportAddress(netip.MustParseAddrPort(s))
	return &t
}

func TestTraversalParametersRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    h460.TraversalParameters
	}{
		{"empty", h460.TraversalParameters{}},
		{"olc from a caller", h460.TraversalParameters{
			MultiplexedMediaChannel: ta("192.0.2.1:2776"), MultiplexedMediaControlChannel: ta("192.0.2.1:2777"),
			MultiplexID: 269646, HasMultiplexID: true,
		}},
		{"ack from the server", h460.TraversalParameters{
			MultiplexedMediaChannel: ta("203.0.113.5:31600"), MultiplexedMediaControlChannel: ta("203.0.113.5:31601"),
			MultiplexID: 1, HasMultiplexID: true, KeepAliveChannel: ta("203.0.113.5:31600"),
			KeepAliveInterval: 19, HasKeepAliveInterval: true,
		}},
		{"keep-alive payload type", h460.TraversalParameters{KeepAlivePayloadType: 127, HasKeepAlivePayloadType: true, MultiplexID: 1<<32 - 1, HasMultiplexID: true}},
		{"payload type 0 present", h460.TraversalParameters{HasKeepAlivePayloadType: true}},
		{"ipv6", h460.TraversalParameters{MultiplexedMediaChannel: ta("[2001:db8::5]:4000"), KeepAliveInterval: 1<<32 - 1, HasKeepAliveInterval: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var back h460.TraversalParameters
			if err := back.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			b2, err := back.Marshal()
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs: %v\n% x\n% x", err, b, b2)
			}
			if back.MultiplexID != tc.p.MultiplexID || back.HasMultiplexID != tc.p.HasMultiplexID ||
				back.KeepAliveInterval != tc.p.KeepAliveInterval || back.KeepAlivePayloadType != tc.p.KeepAlivePayloadType ||
				back.HasKeepAlivePayloadType != tc.p.HasKeepAlivePayloadType || (back.KeepAliveChannel == nil) != (tc.p.KeepAliveChannel == nil) {
				t.Fatalf("decoded %+v, want %+v", back, tc.p)
			}
			var want, got []netip.AddrPort
			collect := func(dst *[]netip.AddrPort) func(*h245.UnicastAddress) {
				return func(u *h245.UnicastAddress) { ap, _ := h245.UnicastAddrPort(u); *dst = append(*dst, ap) }
			}
			tc.p.VisitAddresses(collect(&want))
			back.VisitAddresses(collect(&got))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("addresses %v, want %v", got, want)
			}
		})
	}
}

func TestTraversalParametersErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    h460.TraversalParameters
		want error
	}{
		{"multiplexID without flag", h460.TraversalParameters{MultiplexID: 5}, asn1per.ErrPresence},
		{"payload type without flag", h460.TraversalParameters{KeepAlivePayloadType: 5}, asn1per.ErrPresence},
		{"interval without flag", h460.TraversalParameters{KeepAliveInterval: 5}, asn1per.ErrPresence},
		{"payload type above 127", h460.TraversalParameters{KeepAlivePayloadType: 200, HasKeepAlivePayloadType: true}, asn1per.ErrConstraint},
		{"interval 0 present", h460.TraversalParameters{HasKeepAliveInterval: true}, asn1per.ErrConstraint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.p.Marshal(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	full, _ := (&h460.TraversalParameters{MultiplexedMediaChannel: ta("192.0.2.1:2776"), MultiplexID: 9, HasMultiplexID: true}).Marshal()
	for n := 0; n < len(full); n++ {
		var p h460.TraversalParameters
		if err := p.Unmarshal(full[:n]); !errors.Is(err, asn1per.ErrTruncated) {
			t.Fatalf("cut at %d: got %v, want truncated", n, err)
		}
	}
}

// TestSetTraversal adds parameters to an OLC without genericInformation,
// replaces them, and reads them back through the wire.
func TestSetTraversal(t *testing.T) {
	olc := &h245.OpenLogicalChannel{ForwardLogicalChannelNumber: 1,
		ForwardLogicalChannelParameters: h245.OpenLogicalChannelForwardLogicalChannelParameters{
			DataType: h245.DataType{Choice: h245.DataType_AudioData, AudioData: &h245.AudioCapability{Choice: h245.AudioCapability_G711Ulaw64k, G711Ulaw64k: 20}},
			MultiplexParameters: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters{
				Choice:                        h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
				H2250LogicalChannelParameters: &h245.H2250LogicalChannelParameters{SessionID: 1, MediaControlChannel: ta("10.0.0.1:5001")},
			},
		}}
	if _, found, _ := h460.OLCTraversal(olc); found {
		t.Fatal("found parameters in a plain OLC")
	}
	for i, id := range []uint32{7, 8} {
		p := h460.TraversalParameters{MultiplexedMediaChannel: ta("203.0.113.5:31600"), MultiplexID: id, HasMultiplexID: true}
		if err := h460.SetOLCTraversal(olc, &p); err != nil {
			t.Fatal(err)
		}
		b, err := olc.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var back h245.OpenLogicalChannel
		if err := back.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		got, found, err := h460.OLCTraversal(&back)
		if err != nil || !found || got.MultiplexID != id || len(back.GenericInformation) != 1 {
			t.Fatalf("round %d: %+v found=%v err=%v, %d elements", i, got, found, err, len(back.GenericInformation))
		}
	}
	ack := &h245.OpenLogicalChannelAck{ForwardLogicalChannelNumber: 1}
	if err := h460.SetAckTraversal(ack, &h460.TraversalParameters{KeepAliveInterval: 19, HasKeepAliveInterval: true}); err != nil {
		t.Fatal(err)
	}
	if p, found, err := h460.AckTraversal(ack); err != nil || !found || p.KeepAliveInterval != 19 || !ack.HasGenericInformation {
		t.Fatalf("ack: %+v %v %v", p, found, err)
	}
	// An H.460.19 element with no parameter 1.
	bare := []h245.GenericInformation{{MessageIdentifier: h245.CapabilityIdentifier{Choice: h245.CapabilityIdentifier_Standard, Standard: h460.MediaTraversalOID}}}
	if _, found, err := h460.Traversal(bare); !found || !errors.Is(err, h460.ErrNoParameters) {
		t.Fatalf("bare element: found=%v err=%v", found, err)
	}
}

// h245Messages returns the H.245 messages of a capture with the frame that
// carried each: those on separate H.245 connections and those tunnelled in
// the call signalling.
func h245Messages(t testing.TB, file string) (frames []int, msgs [][]byte) {
	for _, p := range capture.TPKTPackets(t, file, "h245 && !q931 && tcp.len>0 && !tcp.analysis.retransmission") {
		if !p.Partial && !p.Malformed {
			frames, msgs = append(frames, p.Frame), append(msgs, p.Payload)
		}
	}
	for _, p := range capture.TPKTPackets(t, file, "q931 && tcp.len>0 && !tcp.analysis.retransmission") {
		m, err := q931.Parse(p.Payload)
		if err != nil {
			continue
		}
		uu, err := m.UserUser()
		if err != nil {
			continue
		}
		var ui h225.H323UserInformation
		if ui.Unmarshal(uu) != nil {
			continue
		}
		for _, c := range ui.H323UuPdu.H245Control {
			frames, msgs = append(frames, p.Frame), append(msgs, c)
		}
	}
	return frames, msgs
}

func gnugk(t testing.TB) []string {
	ref := capture.RefDir()
	if ref == "" {
		t.Skip("../shared/ref beside the repository is absent (set PORTICO_REF_DIR): no reference captures")
	}
	var out []string
	for _, f := range []string{"gk-h323plus.pcapng", "gk-h323plus-notunnel.pcapng"} {
		out = append(out, filepath.Join(ref, "captures", "gnugk", f))
	}
	return out
}

// tsharkField returns tshark's values of field per frame number.
func tsharkField(t *testing.T, file, field string) map[int]string {
	out, err := exec.Command("tshark", "-r", file, "-Y", field, "-T", "fields", "-e", "frame.number", "-e", field).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	m := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(line, "\t", 2)
		if len(f) == 2 {
			n, _ := strconv.Atoi(f[0])
			m[n] = f[1]
		}
	}
	return m
}

// TestCapturedTraversal decodes the TraversalParameters and H.460.18
// indications GnuGk and h323plus exchanged, checks the values against
// tshark's H.460.19 dissector, and requires byte-exact re-encoding from
// the decoded values (and, for the indication, from Indication alone).
func TestCapturedTraversal(t *testing.T) {
	testpeer.Require(t, "tshark")
	var params, inds, checked int
	for _, file := range gnugk(t) {
		ids := tsharkField(t, file, "h460.19.multiplexID")
		intervals := tsharkField(t, file, "h460.19.keepAliveInterval")
		frames, msgs := h245Messages(t, file)
		for i, b := range msgs {
			var m h245.MultimediaSystemControlMessage
			if err := m.Unmarshal(b); err != nil {
				t.Fatalf("%s frame %d: %v", filepath.Base(file), frames[i], err)
			}
			name := fmt.Sprintf("%s/%d", filepath.Base(file), frames[i])
			if in, ok, err := h460.ParseIndication(&m); ok {
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				out, err := in.Message().Marshal()
				if err != nil || !bytes.Equal(out, b) {
					t.Fatalf("%s: indication %+v re-encodes as % x, captured % x (%v)", name, in, out, b, err)
				}
				inds++
				continue
			}
			var gi *[]h245.GenericInformation
			var has *bool
			switch {
			case m.Request != nil && m.Request.OpenLogicalChannel != nil:
				gi, has = &m.Request.OpenLogicalChannel.GenericInformation, &m.Request.OpenLogicalChannel.HasGenericInformation
			case m.Response != nil && m.Response.OpenLogicalChannelAck != nil:
				gi, has = &m.Response.OpenLogicalChannelAck.GenericInformation, &m.Response.OpenLogicalChannelAck.HasGenericInformation
			default:
				continue
			}
			p, found, err := h460.Traversal(*gi)
			if !found {
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ids[frames[i]] != "" {
				checked++
			}
			if want := ids[frames[i]]; want != "" && !strings.Contains(","+want+",", ","+strconv.FormatUint(uint64(p.MultiplexID), 10)+",") {
				t.Errorf("%s: multiplexID %d, tshark %s", name, p.MultiplexID, want)
			}
			if want := intervals[frames[i]]; want != "" && !strings.Contains(","+want+",", ","+strconv.FormatUint(uint64(p.KeepAliveInterval), 10)+",") {
				t.Errorf("%s: keepAliveInterval %d, tshark %s", name, p.KeepAliveInterval, want)
			}
			// Re-encode the parameters into the message: it must stay identical.
			if err := h460.SetTraversal(gi, has, &p); err != nil {
				t.Fatal(err)
			}
			out, err := m.Marshal()
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("%s: re-encoded differs (%v)\n got % x\nwant % x", name, err, out, b)
			}
			params++
		}
	}
	if params < 8 || inds < 2 || checked < params {
		t.Fatalf("only %d traversal parameter sets (%d checked against tshark) and %d indications found", params, checked, inds)
	}
	t.Logf("%d TraversalParameters and %d H.460.18 indications matched", params, inds)
}

// TestTsharkDissectsOurs writes an OLCAck with TraversalParameters and an
// H.460.18 indication as Portico would send them and has tshark's H.245
// and H.460 dissectors read them.
func TestTsharkDissectsOurs(t *testing.T) {
	testpeer.Require(t, "tshark")
	ack := &h245.OpenLogicalChannelAck{ForwardLogicalChannelNumber: 3}
	if err := h460.SetAckTraversal(ack, &h460.TraversalParameters{
		MultiplexedMediaChannel: ta("127.0.0.5:31600"), MultiplexedMediaControlChannel: ta("127.0.0.5:31601"),
		MultiplexID: 4242, HasMultiplexID: true, KeepAliveChannel: ta("127.0.0.5:31600"),
		KeepAlivePayloadType: 126, HasKeepAlivePayloadType: true, KeepAliveInterval: 19, HasKeepAliveInterval: true,
	}); err != nil {
		t.Fatal(err)
	}
	ackMsg := &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Response,
		Response: &h245.ResponseMessage{Choice: h245.ResponseMessage_OpenLogicalChannelAck, OpenLogicalChannelAck: ack}}
	ind := h460.Indication{CallID: [16]byte{0xde, 0xad}, AnswerCall: true}.Message()
	path := filepath.Join(t.TempDir(), "h460.pcap")
	w, err := capture.NewPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	src, dst := netip.MustParseAddrPort("127.0.0.5:1300"), netip.MustParseAddrPort("127.0.0.6:11001")
	for _, m := range []*h245.MultimediaSystemControlMessage{ackMsg, ind, h245.NewRoundTripDelayRequest(5)} {
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pkt, _ := q931.AppendTPKT(nil, b)
		if err := w.TCP(src, dst, pkt); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	out, err := exec.Command("tshark", "-r", path, "-d", "tcp.port==11001,h245", "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(text, "Malformed") {
		t.Fatalf("tshark reports a malformed packet:\n%s", text)
	}
	for _, want := range []string{"multiplexID: 4242", "keepAlivePayloadType: 126", "keepAliveInterval: 19", "tsapIdentifier: 31601",
		"0.0.8.460.18.0.1", "answerCall", "roundTripDelayRequest"} {
		if !strings.Contains(text, want) {
			t.Errorf("tshark output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("tshark:\n%s", text)
	}
}

func BenchmarkTraversalDecode(b *testing.B) {
	enc, err := (&h460.TraversalParameters{
		MultiplexedMediaChannel: ta("203.0.113.5:31600"), MultiplexedMediaControlChannel: ta("203.0.113.5:31601"),
		MultiplexID: 1, HasMultiplexID: true, KeepAliveChannel: ta("203.0.113.5:31600"), KeepAliveInterval: 19, HasKeepAliveInterval: true,
	}).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var p h460.TraversalParameters
	for b.Loop() {
		if err := p.Unmarshal(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzTraversalParameters(f *testing.F) {
	f.Add([]byte{0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p h460.TraversalParameters
		if p.Unmarshal(b) != nil {
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("decoded value does not encode: %v", err)
		}
		var q h460.TraversalParameters
		if err := q.Unmarshal(out); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		out2, err := q.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("not stable: %v\n% x\n% x", err, out, out2)
		}
	})
}

func FuzzIndication(f *testing.F) {
	b, _ := h460.Indication{CallID: [16]byte{1, 2, 3}, AnswerCall: true}.Message().Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m h245.MultimediaSystemControlMessage
		if m.Unmarshal(b) != nil {
			return
		}
		in, ok, err := h460.ParseIndication(&m)
		if !ok || err != nil {
			return
		}
		out, err := in.Message().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var back h245.MultimediaSystemControlMessage
		if err := back.Unmarshal(out); err != nil {
			t.Fatal(err)
		}
		if in2, ok, err := h460.ParseIndication(&back); !ok || err != nil || in2 != in {
			t.Fatalf("indication %+v came back as %+v (%v, %v)", in, in2, ok, err)
		}
	})
}
