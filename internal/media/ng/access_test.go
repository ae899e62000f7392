package ng

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/media"
)

// TestExposedListenRefused checks that the unauthenticated control port is
// not opened on a public or wildcard address without an allow list or a
// shared secret (anyone reaching it could open relays or tear calls down).
func TestExposedListenRefused(t *testing.T) {
	r, err := media.New(media.Config{Interfaces: map[string]media.InterfaceConfig{"external": {Addr: lo, PortMin: 33000, PortMax: 33099}}}, media.Deps{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		name, listen string
		want         string // error substring; empty: accepted
	}{
		{"wildcard v4", "0.0.0.0:2223", "ng_allow"},
		{"wildcard v6", "[::]:2223", "ng_allow"},
		{"public", "192.0.2.10:2223", "ng_allow"},
		{"loopback", "127.0.0.1:2223", ""},
		{"private", "10.20.30.40:2223", ""},
		{"private v6", "[fd00::1]:2223", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Listen: tc.listen}, Deps{Relay: r, Logger: quiet()})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("New(listen %s) error = %v, want %q", tc.listen, err, tc.want)
			}
		})
	}
}

func clientOn(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAllowList sends a ping from a source outside media.ng_allow and one
// from inside: only the second is answered, and the first is counted.
func TestAllowList(t *testing.T) {
	_, srv, ngAddr := startWith(t, media.LatchNAT, 33100, Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	outside, inside := clientOn(t, "127.0.0.1"), clientOn(t, "127.0.0.2")
	outside.WriteToUDPAddrPort([]byte("c1 d7:command4:pinge"), ngAddr)
	inside.WriteToUDPAddrPort([]byte("c2 d7:command4:pinge"), ngAddr)
	buf := make([]byte, 512)
	inside.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := inside.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "c2 d6:result4:ponge" {
		t.Fatalf("allowed client got %q, %v", buf[:n], err)
	}
	// Serve handles datagrams in order: the first was dropped by now.
	outside.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if n, _, err := outside.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatalf("client outside the allow list got %q", buf[:n])
	}
	if got := testutil.ToFloat64(srv.notAllowed); got != 1 {
		t.Fatalf("not_allowed drops = %v, want 1", got)
	}
}

// TestSharedSecret checks that requests must carry media.ng_secret, as a
// dictionary key or as a flag, before anything (even a cached reply) is
// answered.
func TestSharedSecret(t *testing.T) {
	_, srv, _ := startWith(t, media.LatchNAT, 33100, Config{Secret: "s3cret"})
	for _, tc := range []struct {
		name, pkt string
		answered  bool
	}{
		{"no secret", "a d7:command4:pinge", false},
		{"wrong secret", "b d7:command4:ping6:secret5:guesse", false},
		{"secret key", "c d7:command4:ping6:secret6:s3crete", true},
		{"secret flag", "d d7:command4:ping5:flagsl13:secret=s3cretee", true},
		{"cached cookie without secret", "c d7:command4:pinge", false},
		{"json with secret", `e {"command":"ping","secret":"s3cret"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := srv.Handle([]byte(tc.pkt)); (got != nil) != tc.answered {
				t.Fatalf("Handle(%q) = %q, want answered %v", tc.pkt, got, tc.answered)
			}
		})
	}
	if got := testutil.ToFloat64(srv.badSecret); got != 3 {
		t.Fatalf("bad_secret drops = %v, want 3", got)
	}
}

// TestServeRefusesExposedSocket checks the same rule for a socket handed
// to Serve: a wildcard socket without allow list or secret is refused.
func TestServeRefusesExposedSocket(t *testing.T) {
	r, err := media.New(media.Config{Interfaces: map[string]media.InterfaceConfig{"external": {Addr: lo, PortMin: 33200, PortMax: 33299}}}, media.Deps{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	srv, err := New(Config{}, Deps{Relay: r, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0") // never sent to
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background(), pc); !errors.Is(err, ErrExposed) {
		t.Fatalf("Serve on a wildcard socket = %v, want ErrExposed", err)
	}
}
