package ha

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var (
	src4 = netip.MustParseAddr("192.0.2.1")
	src6 = netip.MustParseAddr("fe80::1")
)

func TestAdvertRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		src, dst netip.Addr
		a        Advert
	}{
		{"ipv4", src4, GroupV4, Advert{VRID: 51, Priority: 150, Interval: 10, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")}}},
		{"ipv6", src6, GroupV6, Advert{VRID: 7, Priority: 100, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("fe80::100"), netip.MustParseAddr("2001:db8::100")}}},
		{"stop", src4, GroupV4, Advert{VRID: 255, Priority: PriorityStop, Interval: MaxInterval, Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.1")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.a.Append(nil, tc.src, tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(b, tc.src, tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.a) {
				t.Errorf("got %+v, want %+v", got, tc.a)
			}
			// The checksum covers the pseudo-header: another source fails.
			other := tc.src.Next()
			if _, err := Parse(b, other, tc.dst); !errors.Is(err, ErrChecksum) {
				t.Errorf("parse from %s: %v, want a checksum error", other, err)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	good, err := (&Advert{VRID: 1, Priority: 100, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}).Append(nil, src4, GroupV4)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	refix := func(b []byte) []byte {
		binary.BigEndian.PutUint16(b[6:], 0)
		binary.BigEndian.PutUint16(b[6:], checksum(b, src4, GroupV4, Protocol))
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"header only", good[:8], ErrShort},
		{"version 2", mod(func(b []byte) []byte { b[0] = 2<<4 | 1; return b }), ErrVersion},
		{"type 2", mod(func(b []byte) []byte { b[0] = 3<<4 | 2; return b }), ErrType},
		{"count past the end", mod(func(b []byte) []byte { b[3] = 2; return b }), ErrShort},
		{"no addresses", mod(func(b []byte) []byte { b[3] = 0; return b }), ErrShort},
		{"checksum", mod(func(b []byte) []byte { b[2]++; return b }), ErrChecksum},
		{"vrid 0", mod(func(b []byte) []byte { b[1] = 0; return refix(b) }), ErrField},
		{"interval 0", mod(func(b []byte) []byte { b[4], b[5] = 0, 0; return refix(b) }), ErrField},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.b, src4, GroupV4); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAppendRefuses(t *testing.T) {
	v4 := []netip.Addr{netip.MustParseAddr("192.0.2.100")}
	tests := []struct {
		name string
		a    Advert
		src  netip.Addr
	}{
		{"vrid 0", Advert{Interval: 100, Addrs: v4}, src4},
		{"interval 0", Advert{VRID: 1, Addrs: v4}, src4},
		{"interval too long", Advert{VRID: 1, Interval: MaxInterval + 1, Addrs: v4}, src4},
		{"no addresses", Advert{VRID: 1, Interval: 100}, src4},
		{"mixed families", Advert{VRID: 1, Interval: 100, Addrs: v4}, src6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := tc.a.Append(nil, tc.src, GroupV4); err == nil || len(b) != 0 {
				t.Errorf("appended %x, %v", b, err)
			}
		})
	}
}

// TestTsharkReadsAdvert has tshark, a VRRP decoder written apart from this
// package, read an advertisement in an IPv4 packet and check its checksum.
func TestTsharkReadsAdvert(t *testing.T) {
	if testing.Short() {
		t.Skip("needs tshark")
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark is not installed (Debian package tshark)")
	}
	a := Advert{VRID: 51, Priority: 150, Interval: 10, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}
	msg, err := a.Append(nil, src4, GroupV4)
	if err != nil {
		t.Fatal(err)
	}
	ip := []byte{0x45, 0xc0, 0, byte(20 + len(msg)), 0, 0, 0, 0, TTL, Protocol, 0, 0}
	ip = append(ip, src4.AsSlice()...)
	ip = append(ip, GroupV4.AsSlice()...)
	var s uint32
	for i := 0; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	s = s&0xffff + s>>16
	binary.BigEndian.PutUint16(ip[10:], ^uint16(s&0xffff+s>>16))
	pkt := append(ip, msg...)
	// A pcap of one raw-IPv4 packet (link type 228).
	pcap := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 228, 0, 0, 0}
	pcap = binary.LittleEndian.AppendUint32(pcap, 1)
	pcap = binary.LittleEndian.AppendUint32(pcap, 0)
	pcap = binary.LittleEndian.AppendUint32(pcap, uint32(len(pkt)))
	pcap = binary.LittleEndian.AppendUint32(pcap, uint32(len(pkt)))
	pcap = append(pcap, pkt...)
	path := filepath.Join(t.TempDir(), "vrrp.pcap")
	if err := os.WriteFile(path, pcap, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tshark", "-r", path, "-o", "vrrp.v3_checksum_as_in_v2:FALSE", "-T", "fields",
		"-e", "vrrp.version", "-e", "vrrp.virt_rtr_id", "-e", "vrrp.prio", "-e", "vrrp.short_adver_int", "-e", "vrrp.ip_addr", "-e", "vrrp.checksum.status").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	want := []string{"3", "51", "150", "10", "192.0.2.100", "1"} // checksum status 1: good
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tshark read %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, a := range []struct {
		src, dst netip.Addr
		addrs    []netip.Addr
	}{
		{src4, GroupV4, []netip.Addr{netip.MustParseAddr("192.0.2.100")}},
		{src6, GroupV6, []netip.Addr{netip.MustParseAddr("fe80::100")}},
	} {
		b, _ := (&Advert{VRID: 1, Priority: 100, Interval: 100, Addrs: a.addrs}).Append(nil, a.src, a.dst)
		f.Add(b, a.src.Is6())
	}
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src, dst := src4, GroupV4
		if v6 {
			src, dst = src6, GroupV6
		}
		a, err := Parse(b, src, dst)
		if err != nil {
			return
		}
		out, err := a.Append(nil, src, dst)
		if err != nil {
			t.Fatalf("parsed %+v does not append: %v", a, err)
		}
		again, err := Parse(out, src, dst)
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, a)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	msg, _ := (&Advert{VRID: 1, Priority: 100, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}).Append(nil, src4, GroupV4)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(msg, src4, GroupV4); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnsolicitedNA: the advertisement is RFC 4861's layout (type 136,
// Override set, Solicited and Router clear, the target, a Target
// Link-Layer Address option) and its checksum verifies over the IPv6
// pseudo-header; what is not IPv6 or Ethernet is refused.
func TestUnsolicitedNA(t *testing.T) {
	target := netip.MustParseAddr("2001:db8::100")
	src := netip.MustParseAddr("fe80::1")
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	b, err := AppendUnsolicitedNA([]byte{0xee}, target, mac, src, AllNodes)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0xee {
		t.Fatal("the bytes before were not kept")
	}
	b = b[1:]
	want := append([]byte{136, 0, 0, 0, 0x20, 0, 0, 0}, target.AsSlice()...)
	want = append(want, 2, 1, 0x02, 0, 0, 0, 0, 0x0a)
	if len(b) != 32 || !bytes.Equal(b[:2], want[:2]) || !bytes.Equal(b[4:], want[4:]) {
		t.Fatalf("got % x\nwant % x (checksum aside)", b, want)
	}
	if c := checksum(b, src, AllNodes, icmpv6); c != 0 {
		t.Errorf("checksum does not verify: %#x", c)
	}
	for _, bad := range []struct {
		name     string
		target   netip.Addr
		mac      net.HardwareAddr
		src, dst netip.Addr
	}{
		{"ipv4 target", netip.MustParseAddr("192.0.2.100"), mac, src, AllNodes},
		{"ipv4 source", target, mac, netip.MustParseAddr("192.0.2.1"), AllNodes},
		{"not ethernet", target, net.HardwareAddr{1, 2, 3}, src, AllNodes},
	} {
		if _, err := AppendUnsolicitedNA(nil, bad.target, bad.mac, bad.src, bad.dst); err == nil {
			t.Errorf("%s: accepted", bad.name)
		}
	}
}

func BenchmarkAppendUnsolicitedNA(b *testing.B) {
	target, src := netip.MustParseAddr("2001:db8::100"), netip.MustParseAddr("fe80::1")
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendUnsolicitedNA(buf[:0], target, mac, src, AllNodes); err != nil {
			b.Fatal(err)
		}
	}
}
