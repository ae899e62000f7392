package proxyproto

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParse(t *testing.T) {
	v4s, v4d := netip.MustParseAddrPort("203.0.113.7:51000"), netip.MustParseAddrPort("127.0.0.1:8443")
	v6s, v6d := netip.MustParseAddrPort("[2001:db8::7]:51000"), netip.MustParseAddrPort("[::1]:8443")
	tests := []struct {
		name    string
		in      []byte
		want    Header
		wantErr error
	}{
		{name: "v1 tcp4", in: []byte("PROXY TCP4 203.0.113.7 127.0.0.1 51000 8443\r\nGET /"), want: Header{Version: 1, Source: v4s, Dest: v4d, Len: 45}},
		{name: "v1 tcp6", in: AppendV1(nil, v6s, v6d), want: Header{Version: 1, Source: v6s, Dest: v6d, Len: len(AppendV1(nil, v6s, v6d))}},
		{name: "v1 unknown", in: []byte("PROXY UNKNOWN\r\n"), want: Header{Version: 1, Local: true, Len: 15}},
		{name: "v1 short", in: []byte("PROXY TCP4 1.2.3.4"), wantErr: ErrShort},
		{name: "v1 prefix", in: []byte("PRO"), wantErr: ErrShort},
		{name: "v1 bad family", in: []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), wantErr: ErrMalformed},
		{name: "v1 bad port", in: []byte("PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n"), wantErr: ErrMalformed},
		{name: "v1 leading zero port", in: []byte("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"), wantErr: ErrMalformed},
		{name: "v1 no crlf", in: append([]byte("PROXY TCP4 "), make([]byte, 120)...), wantErr: ErrMalformed},
		{name: "v2 tcp4", in: append(AppendV2(nil, v4s, v4d), "data"...), want: Header{Version: 2, Source: v4s, Dest: v4d, Len: 28}},
		{name: "v2 tcp6", in: AppendV2(nil, v6s, v6d), want: Header{Version: 2, Source: v6s, Dest: v6d, Len: 52}},
		{name: "v2 local", in: AppendV2(nil, netip.AddrPort{}, netip.AddrPort{}), want: Header{Version: 2, Local: true, Len: 16}},
		{name: "v2 with tlv", in: append(append(SigV2[:12:12], 0x21, 0x11, 0, 17, 203, 0, 113, 7, 127, 0, 0, 1, 0xc7, 0x38, 0x20, 0xfb), 0x04, 0, 2, 'o', 'k'), want: Header{Version: 2, Source: v4s, Dest: v4d, Len: 33}},
		{name: "v2 short", in: AppendV2(nil, v4s, v4d)[:20], wantErr: ErrShort},
		{name: "v2 bad version", in: append(SigV2[:12:12], 0x11, 0x11, 0, 0), wantErr: ErrMalformed},
		{name: "v2 udp", in: append(SigV2[:12:12], 0x21, 0x12, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), wantErr: ErrMalformed},
		{name: "not proxy", in: []byte("GET / HTTP/1.1\r\n"), wantErr: ErrNotProxy},
		{name: "not proxy tls", in: []byte{0x16, 3, 1}, wantErr: ErrNotProxy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Parse(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && h != tc.want {
				t.Fatalf("got %+v, want %+v", h, tc.want)
			}
		})
	}
}

func BenchmarkParseV2(b *testing.B) {
	in := AppendV2(nil, netip.MustParseAddrPort("203.0.113.7:51000"), netip.MustParseAddrPort("127.0.0.1:8443"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(in); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 51000 8443\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(AppendV2(nil, netip.MustParseAddrPort("[2001:db8::7]:1"), netip.MustParseAddrPort("[::1]:2")))
	f.Add(AppendV2(nil, netip.MustParseAddrPort("1.2.3.4:1"), netip.MustParseAddrPort("5.6.7.8:2")))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			return
		}
		if h.Len <= 0 || h.Len > len(b) {
			t.Fatalf("Len %d outside %d", h.Len, len(b))
		}
		if !h.Local {
			// Round trip through the writer of the same version.
			var out []byte
			if h.Version == 1 {
				out = AppendV1(nil, h.Source, h.Dest)
			} else {
				out = AppendV2(nil, h.Source, h.Dest)
			}
			h2, err := Parse(out)
			if err != nil || h2.Source != h.Source || h2.Dest != h.Dest {
				t.Fatalf("round trip %+v -> %+v %v", h, h2, err)
			}
		}
	})
}
