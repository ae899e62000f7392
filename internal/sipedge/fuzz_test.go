package sipedge

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/policy"
)

// FuzzInbound sends arbitrary datagrams to a running Portico's external
// side, as an attacker on the Internet would, and checks it still answers.
// A panic in any handler crashes the fuzz worker and is reported.
func FuzzInbound(f *testing.F) {
	for _, v := range tortureVectors {
		f.Add([]byte(strings.ReplaceAll(strings.ReplaceAll(strings.Replace(v.msg, "%s", "127.0.0.1:5999", 1), "%d", "42"), "%%", "%")))
	}
	f.Add([]byte("REGISTER sip:portico.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\nFrom: <sip:a@portico.test>;tag=1\r\nTo: <sip:a@portico.test>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("BYE sip:x@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: nope\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"))
	p := startPortico(f, Config{CallServers: []CallServer{{Address: kamIP + ":9", Transport: "udp"}}, ProbeInterval: -1,
		FailoverTimeout: 50 * time.Millisecond, Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}}})
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(outsideIP)})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	dst := net.UDPAddrFromAddrPort(p.extUDP)
	f.Fuzz(func(t *testing.T, b []byte) {
		c.WriteToUDP(b, dst)
	})
	if err := optionsPing(p.extUDP.String()); err != nil {
		f.Fatalf("Portico stopped answering: %v", err)
	}
}

// FuzzFlowToken checks that flow tokens from the network never panic the
// decoder and that only tokens Portico made are accepted.
func FuzzFlowToken(f *testing.F) {
	fc := &flowCodec{key: []byte("0123456789abcdef0123456789abcdef")}
	f.Add(fc.encode(Flow{Transport: "tcp", Source: netip.MustParseAddrPort("192.0.2.1:5060")}))
	f.Add(fc.encode(Flow{Transport: "wss", Source: netip.MustParseAddrPort("[2001:db8::1]:443")}))
	f.Add("aaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Fuzz(func(t *testing.T, tok string) {
		fl, err := fc.decode(tok)
		if err != nil {
			return
		}
		if again := fc.encode(fl); !strings.EqualFold(again, tok) {
			// A valid MAC on a token Portico did not produce would be a forgery.
			t.Fatalf("accepted token %q decodes to %+v which encodes to %q", tok, fl, again)
		}
	})
}

func TestFlowToken(t *testing.T) {
	fc := &flowCodec{key: []byte("k")}
	for _, f := range []Flow{
		{Transport: "udp", Source: netip.MustParseAddrPort("203.0.113.7:40000")},
		{Transport: "ws", Source: netip.MustParseAddrPort("[2001:db8::7]:8443")},
	} {
		tok := fc.encode(f)
		got, err := fc.decode(tok)
		if err != nil || got != f {
			t.Errorf("round trip %+v: %+v %v", f, got, err)
		}
		bad := []byte(tok)
		if bad[0] == 'a' {
			bad[0] = 'b'
		} else {
			bad[0] = 'a'
		}
		if _, err := fc.decode(string(bad)); err == nil {
			t.Errorf("tampered token %s accepted", bad)
		}
		if _, err := (&flowCodec{key: []byte("other")}).decode(tok); err == nil {
			t.Error("token accepted under another key")
		}
	}
}

func TestGuestPolicy(t *testing.T) {
	// The guest policy is now rules (policy.GuestRules); its behaviour is kept.
	p := newCallPolicy(Config{Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999", "70000"}, Aliases: []string{"Meet"}}})
	fb := newCallPolicy(Config{Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}, DefaultDestination: "reception"}})
	off := newCallPolicy(Config{Guest: GuestPolicy{VMRRanges: []string{"1000-1999"}}})
	tests := []struct {
		name string
		p    *policy.Policy
		user string
		want string
		ok   bool
	}{
		{"in range", p, "1500", "1500", true},
		{"range bounds", p, "1999", "1999", true},
		{"below range", p, "999", "", false},
		{"longer number", p, "15000", "", false},
		{"single number", p, "70000", "70000", true},
		{"alias any case", p, "meet", "meet", true},
		{"not allowed", p, "bob", "", false},
		{"empty", p, "", "", false},
		{"default destination", fb, "bob", "reception", true},
		{"allowed with default", fb, "1001", "1001", true},
		{"guests disabled", off, "1500", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.p.Evaluate(policy.Call{Caller: policy.CallerGuest, To: tc.user})
			got, ok := d.Destination, d.Allowed()
			if !ok {
				got = ""
			}
			if got != tc.want || ok != tc.ok {
				t.Errorf("destination(%q) = %q, %v; want %q, %v", tc.user, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	good := func() Config {
		return Config{Listeners: []Listener{{Interface: External, Transport: "udp", Address: "127.0.0.2:5060"},
			{Interface: Internal, Transport: "udp", Address: "127.0.0.3:5060"}},
			CallServers: []CallServer{{Address: "127.0.0.4:5060"}}}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"valid", func(*Config) {}, ""},
		{"bad call server", func(c *Config) { c.CallServers = append(c.CallServers, CallServer{Address: "x:99999"}) }, "sip.call_servers[1].address"},
		{"bad transport", func(c *Config) { c.Listeners[0].Transport = "sctp" }, "sip.listeners[0].transport"},
		{"bad interface", func(c *Config) { c.Listeners[1].Interface = "dmz" }, "sip.listeners[1].interface"},
		{"no internal", func(c *Config) { c.Listeners = c.Listeners[:1] }, "sip.listeners: no internal listener"},
		{"no call servers", func(c *Config) { c.CallServers = nil }, "sip.call_servers"},
		{"bad range", func(c *Config) { c.Guest.VMRRanges = []string{"20-10"} }, "sip.guest.vmr_ranges[0]"},
		{"short NAT expiry", func(c *Config) { c.NATBindingExpiry = time.Second }, "sip.nat_binding_expiry"},
		{"tls without cert", func(c *Config) { c.Listeners[0].Transport = "tls" }, "sip.listeners[0].transport"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mod(&c)
			_, err := New(c, Deps{Media: nopMedia{}})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to name %s", err, tc.want)
			}
		})
	}
}

func BenchmarkFlowToken(b *testing.B) {
	b.ReportAllocs()
	fc := &flowCodec{key: []byte("0123456789abcdef0123456789abcdef")}
	f := Flow{Transport: "udp", Source: netip.MustParseAddrPort("203.0.113.7:40000")}
	for b.Loop() {
		if _, err := fc.decode(fc.encode(f)); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzShedDatagram checks the pre-parse overload check on arbitrary
// datagrams: it never panics and sheds only new INVITEs and REGISTERs.
func FuzzShedDatagram(f *testing.F) {
	f.Add([]byte("INVITE sip:a@b SIP/2.0\r\nTo: <sip:a@b>;tag=1\r\n\r\n"))
	f.Add([]byte("INVITE sip:a@b SIP/2.0\r\nt: <sip:a@b>\r\n\r\n"))
	f.Add([]byte("REGISTER sip:b SIP/2.0\r\n\r\n"))
	f.Add([]byte("SIP/2.0 200 OK\r\n\r\n"))
	var a admission
	a.queued.Store(10)
	o := Overload{MaxQueued: 1}
	f.Fuzz(func(t *testing.T, b []byte) {
		if a.shedDatagram(o, b) && !strings.HasPrefix(string(b), "INVITE ") && !strings.HasPrefix(string(b), "REGISTER ") {
			t.Errorf("shed %q", b)
		}
	})
}
