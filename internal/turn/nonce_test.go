package turn

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestNonces: a nonce is valid for the address it was issued to, within
// its lifetime, and only with this keeper's signature; the signature kept
// for the current second does not let a forged one through, and the
// checks allocate nothing.
func TestNonces(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k, err := newNonceKeeper(func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	other, err := newNonceKeeper(func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ip, ip2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	n := k.appendNonce(nil, ip)
	if len(n) != nonceLen {
		t.Fatalf("nonce %q: %d characters", n, len(n))
	}
	if !k.valid(n, ip) || k.Validate(string(n)) != nil {
		t.Fatal("a fresh nonce is not valid")
	}
	if k.valid(n, ip2) {
		t.Error("valid for another address")
	}
	if other.valid(n, ip) || other.Validate(string(n)) == nil {
		t.Error("valid for another keeper")
	}
	forged := []byte(string(n))
	// Another signature, hexadecimal still, with the current second's cached.
	if forged[nonceTimeLen] = '0'; n[nonceTimeLen] == '0' {
		forged[nonceTimeLen] = '1'
	}
	if k.valid(forged, ip) || k.Validate(string(forged)) == nil {
		t.Error("a forged signature is valid")
	}
	upper := []byte(strings.ToUpper(string(n[:nonceTimeLen])) + string(n[nonceTimeLen:]))
	if string(upper) != string(n) && k.Validate(string(upper)) == nil {
		t.Error("a nonce with its time part rewritten is valid")
	}
	g, _ := k.Generate()
	if k.Validate(g) != nil || !strings.HasSuffix(g, strings.Repeat("0", nonceLen-nonceBaseLen)) {
		t.Errorf("engine nonce %q", g)
	}
	b := []byte(g)
	k.bind(b, ip)
	if !k.valid(b, ip) || !k.check(append([]byte(nil), b...), ip) {
		t.Error("a bound engine nonce is not valid")
	}
	if c := append([]byte(nil), b...); k.check(c, ip2) || c[0] != 'x' {
		t.Errorf("check for another address: %q not spoiled", c)
	}

	now = now.Add(nonceLifetime - time.Second)
	if !k.valid(n, ip) {
		t.Error("not valid within its lifetime")
	}
	now = now.Add(2 * time.Second)
	if k.valid(n, ip) || k.Validate(string(n)) == nil {
		t.Error("valid after its lifetime")
	}
	now = now.Add(-nonceLifetime - nonceFuture - 2*time.Second)
	if k.valid(n, ip) {
		t.Error("valid when issued in the future")
	}

	now = time.Unix(1_800_000_000, 0)
	ns := string(n)
	if a := testing.AllocsPerRun(100, func() { k.valid(n, ip); _ = k.Validate(ns); k.appendNonce(n[:0], ip) }); a != 0 && !raceEnabled {
		t.Errorf("nonce checks allocate %v times", a)
	}
}
