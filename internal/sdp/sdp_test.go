package sdp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

const offerSRTP = "v=0\r\n" +
	"o=alice 2890844526 2890844526 IN IP4 10.0.0.5\r\n" +
	"s=-\r\n" +
	"c=IN IP4 10.0.0.5\r\n" +
	"t=0 0\r\n" +
	"a=ice-ufrag:abcd\r\n" +
	"m=audio 49170 RTP/SAVP 0 101\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=rtcp:49171 IN IP4 10.0.0.5\r\n" +
	"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n" +
	"a=candidate:1 1 UDP 2130706431 10.0.0.5 49170 typ host\r\n" +
	"a=sendrecv\r\n" +
	"m=video 51372 RTP/AVP 96\r\n" +
	"c=IN IP4 10.0.0.6\r\n" +
	"a=rtpmap:96 H264/90000\r\n" +
	"a=rtcp-mux\r\n" +
	"a=sendonly\r\n" +
	"m=video 0 RTP/AVP 97\r\n" +
	"a=rtpmap:97 H264/90000\r\n" +
	"a=content:slides\r\n"

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
		check   func(t *testing.T, d *Description)
	}{
		{name: "three streams", in: offerSRTP, check: func(t *testing.T, d *Description) {
			if len(d.Streams) != 3 {
				t.Fatalf("streams = %d", len(d.Streams))
			}
			a, v, c := d.Streams[0], d.Streams[1], d.Streams[2]
			if a.RTP != netip.MustParseAddrPort("10.0.0.5:49170") || a.RTCP != netip.MustParseAddrPort("10.0.0.5:49171") {
				t.Errorf("audio = %v %v", a.RTP, a.RTCP)
			}
			if a.Proto != "RTP/SAVP" || a.Kind != "audio" || len(a.Codecs) != 2 || a.Codecs[0] != "PCMU/8000" {
				t.Errorf("audio = %+v", a)
			}
			if v.RTP != netip.MustParseAddrPort("10.0.0.6:51372") || !v.RTCPMux || v.RTCP != v.RTP || !v.Hold() {
				t.Errorf("video = %+v", v)
			}
			if !c.Disabled() || c.Content != "slides" {
				t.Errorf("content = %+v", c)
			}
		}},
		{name: "empty", in: "", wantErr: ErrEmpty},
		{name: "garbage", in: "hello world\r\n", wantErr: ErrMalformed},
		{name: "no address", in: "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", wantErr: ErrNoAddress},
		{name: "too large", in: strings.Repeat("a", MaxSize+1), wantErr: ErrTooLarge},
		{name: "hold 0.0.0.0", in: "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", check: func(t *testing.T, d *Description) {
			if !d.Streams[0].Hold() {
				t.Error("not hold")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.in))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, d)
		})
	}
}

func TestRewrite(t *testing.T) {
	d, err := Parse([]byte(offerSRTP))
	if err != nil {
		t.Fatal(err)
	}
	eps := []Endpoint{
		{RTP: netip.MustParseAddrPort("192.0.2.1:20000"), RTCP: netip.MustParseAddrPort("192.0.2.1:20001")},
		{RTP: netip.MustParseAddrPort("192.0.2.1:20002")},
		{},
	}
	out, err := d.Rewrite(eps)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, bad := range []string{"10.0.0.5", "10.0.0.6", "candidate", "ice-ufrag"} {
		if strings.Contains(s, bad) {
			t.Errorf("rewritten SDP still has %q:\n%s", bad, s)
		}
	}
	for _, want := range []string{"m=audio 20000 RTP/SAVP 0 101", "a=rtcp:20001 IN IP4 192.0.2.1", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
		"m=video 20002 RTP/AVP 96", "m=video 0 RTP/AVP 97", "o=alice 2890844526 2890844527 IN IP4 192.0.2.1", "a=sendonly", "a=content:slides"} {
		if !strings.Contains(s, want) {
			t.Errorf("rewritten SDP lacks %q:\n%s", want, s)
		}
	}
	d2, err := Parse(out)
	if err != nil {
		t.Fatalf("reparse: %v", err)
	}
	if d2.Streams[0].RTP != eps[0].RTP || d2.Streams[1].RTP != eps[1].RTP || !d2.Streams[2].Disabled() {
		t.Errorf("reparsed streams = %+v", d2.Streams)
	}
	if _, err := d2.Rewrite(eps[:1]); !errors.Is(err, ErrMismatch) {
		t.Errorf("short endpoints: err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(offerSRTP))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\na=rtcp:99999\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		eps := make([]Endpoint, len(d.Streams))
		for i := range eps {
			eps[i] = Endpoint{RTP: netip.MustParseAddrPort("192.0.2.9:30000")}
		}
		if _, err := d.Rewrite(eps); err != nil {
			return
		}
		for _, a := range d.sd.Attributes {
			if a.Key == "candidate" {
				t.Fatal("session candidate survived rewrite")
			}
		}
		for _, m := range d.sd.MediaDescriptions {
			for _, a := range m.Attributes {
				if a.Key == "candidate" {
					t.Fatal("media candidate survived rewrite")
				}
			}
		}
	})
}

func BenchmarkParseRewrite(b *testing.B) {
	b.ReportAllocs()
	eps := []Endpoint{{RTP: netip.MustParseAddrPort("192.0.2.1:20000")}, {RTP: netip.MustParseAddrPort("192.0.2.1:20002")}, {}}
	for b.Loop() {
		d, err := Parse([]byte(offerSRTP))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Rewrite(eps); err != nil {
			b.Fatal(err)
		}
	}
}
