package sniff

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"testing"
	"time"
)

// captureHello returns the bytes a crypto/tls client sends first.
func captureHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	go func() {
		_ = tls.Client(c1, cfg).Handshake()
		c1.Close()
	}()
	var out []byte
	buf := make([]byte, 4096)
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := c2.Read(buf)
		out = append(out, buf[:n]...)
		if _, perr := ParseClientHello(out); perr != ErrShort || err != nil {
			break
		}
	}
	c2.Close()
	return out
}

func TestParseClientHello(t *testing.T) {
	tests := []struct {
		name string
		cfg  *tls.Config
		sni  string
		alpn []string
	}{
		{name: "sni and alpn", cfg: &tls.Config{ServerName: "Portal.Example.test", NextProtos: []string{"h2", "http/1.1"}}, sni: "portal.example.test", alpn: []string{"h2", "http/1.1"}},
		{name: "turn alpn", cfg: &tls.Config{ServerName: "turn.example.test", NextProtos: []string{"stun.turn"}}, sni: "turn.example.test", alpn: []string{"stun.turn"}},
		{name: "ip address sends no sni", cfg: &tls.Config{ServerName: "127.0.0.1"}, sni: ""},
		{name: "tls12 only", cfg: &tls.Config{ServerName: "a.test", MaxVersion: tls.VersionTLS12}, sni: "a.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.InsecureSkipVerify = true
			b := captureHello(t, tc.cfg)
			ch, err := ParseClientHello(b)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if ch.ServerName != tc.sni || !slices.Equal(ch.ALPN, tc.alpn) {
				t.Fatalf("got sni %q alpn %v, want %q %v", ch.ServerName, ch.ALPN, tc.sni, tc.alpn)
			}
			if ch.Len != len(b) {
				t.Fatalf("Len = %d, want %d", ch.Len, len(b))
			}
			for i := 0; i < len(b); i++ {
				if _, err := ParseClientHello(b[:i]); err != ErrShort {
					t.Fatalf("prefix %d: err = %v, want ErrShort", i, err)
				}
			}
			if k, err := Classify(b[:1]); k != TLS || err != nil {
				t.Fatalf("classify = %v %v", k, err)
			}
		})
	}
}

func TestFragmentedClientHello(t *testing.T) {
	b := captureHello(t, &tls.Config{ServerName: "frag.example.test", NextProtos: []string{"xmpp-client"}, InsecureSkipVerify: true})
	// Re-split the single handshake record into records of 100 bytes.
	hs := b[5:]
	var out []byte
	for len(hs) > 0 {
		n := min(100, len(hs))
		out = append(out, 0x16, 3, 1, byte(n>>8), byte(n))
		out = append(out, hs[:n]...)
		hs = hs[n:]
	}
	ch, err := ParseClientHello(out)
	if err != nil || ch.ServerName != "frag.example.test" || ch.ALPN[0] != "xmpp-client" || ch.Len != len(out) {
		t.Fatalf("fragmented: %+v %v", ch, err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		in   string
		want Kind
		err  error
	}{
		{"", Unknown, ErrShort},
		{"GET / HTTP/1.1\r\n", HTTP, nil},
		{"GE", Unknown, ErrShort},
		{"POST /x", HTTP, nil},
		{"PRI * HTTP/2.0\r\n", HTTP, nil},
		{"HELLO", Unknown, nil},
		{"\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl", STUN, nil},
		{"\x00\x03\x00\x08\x21\x12", Unknown, ErrShort},
		{"\x00\x01\x00\x00\x00\x00\x00\x00", Unknown, nil},
		{"\x30\x1d\x02\x01\x01", LDAP, nil},
		{"<?xml version='1.0'?>", XMPP, nil},
		{"\x16\x03\x01", TLS, nil},
		{"\x16\x02", Unknown, nil},
		{"\xff\xff", Unknown, nil},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			k, err := Classify([]byte(tc.in))
			if k != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("Classify(%q) = %v, %v; want %v, %v", tc.in, k, err, tc.want, tc.err)
			}
		})
	}
}

func TestNotClientHello(t *testing.T) {
	for _, in := range []string{"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "\x17\x03\x03\x00\x01x", "\x16\x03\x01\x00\x00"} {
		if _, err := ParseClientHello([]byte(in)); err == nil || err == ErrShort {
			t.Fatalf("%q: err = %v", in, err)
		}
	}
}

func BenchmarkParseClientHello(b *testing.B) {
	hello := captureHello(b, &tls.Config{ServerName: "portal.example.test", NextProtos: []string{"h2", "http/1.1"}, InsecureSkipVerify: true})
	b.ReportAllocs()
	b.SetBytes(int64(len(hello)))
	for b.Loop() {
		if _, err := ParseClientHello(hello); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseClientHello(f *testing.F) {
	f.Add(captureHello(f, &tls.Config{ServerName: "a.example.test", NextProtos: []string{"h2"}, InsecureSkipVerify: true}))
	f.Add(captureHello(f, &tls.Config{ServerName: "b.test", MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true}))
	f.Add([]byte("\x16\x03\x01\x00\x04\x01\x00\x00\x00"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := ParseClientHello(b)
		if err == nil && (ch.Len > len(b) || ch.Len <= 0) {
			t.Fatalf("Len %d outside input of %d bytes", ch.Len, len(b))
		}
		if err == nil && len(ch.ServerName) > 255 {
			t.Fatal("server name longer than 255")
		}
		_, _ = Classify(b)
	})
}
