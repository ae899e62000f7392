package turn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	pturn "github.com/pion/turn/v5"
)

// Nonces bound to the client's address (RFC 8489 §9.2: the nonce may
// encode the client's IP address; RFC 8656 §7.2 relies on it to stop a
// captured Allocate being replayed from elsewhere).
//
// pion's own nonces are the same for every client within a minute and
// carry no address, so a request captured on the wire could be replayed
// from another address for an hour; and pion offers no hook for its nonce.
// So the engine is given nonceKeeper as its nonce manager, and the nonce it
// hands out travels through the service's own sockets, which fill in the
// address tag on the way out (the 401 and 438 responses that carry a
// nonce have no MESSAGE-INTEGRITY) and check it on the way in, spoiling a
// nonce that was issued to another address so that the engine answers 438
// (Stale Nonce) with a fresh one.
//
// A nonce is 48 hexadecimal characters:
//
//	time (8) | HMAC(key, "n" time)[:8] (16) | HMAC(key, "a" time base client-IP)[:12] (24)
//
// The engine's check (Validate) covers the first two parts and the age; the
// sockets check the third against the sender's IP. The IP, not the port,
// is bound: RFC 6062 data connections and TCP reconnections come from new
// ports with the nonce of the control connection.
type nonceKeeper struct {
	key [32]byte
	now func() time.Time
	// macs holds keyed HMAC-SHA256 states (nonceMAC): keying one costs two
	// SHA-256 blocks and several allocations, resetting a used one neither.
	macs sync.Pool
	// last is the signature of the last issue time signed or checked:
	// every nonce issued within one second has the same.
	last atomic.Pointer[nonceSig]
}

// nonceSig is the signature part of the nonces issued at one time.
type nonceSig struct {
	ts  [nonceTimeLen]byte // the time part, hexadecimal
	sig [8]byte
}

// nonceMAC is one keyed HMAC state with room for its input and output, so
// that a MAC costs no allocation.
type nonceMAC struct {
	h   hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

const (
	nonceTimeLen = 8
	nonceBaseLen = nonceTimeLen + 16
	nonceLen     = nonceBaseLen + 24
	// nonceLifetime is how long a nonce is accepted (the engine's own
	// nonces live an hour too); then the client gets 438 and a new one.
	nonceLifetime = time.Hour
	// nonceFuture tolerates a clock step between issue and use.
	nonceFuture = time.Minute
)

func newNonceKeeper(now func() time.Time) (*nonceKeeper, error) {
	k := &nonceKeeper{now: now}
	if _, err := rand.Read(k.key[:]); err != nil {
		return nil, err
	}
	k.macs.New = func() any { return &nonceMAC{h: hmac.New(sha256.New, k.key[:]), in: make([]byte, 0, 64)} }
	return k, nil
}

// mac returns HMAC(key, tag parts...) in m.sum, m taken from the pool; the
// caller puts m back when done with the sum.
func (k *nonceKeeper) mac(tag byte, parts ...[]byte) *nonceMAC {
	m := k.macs.Get().(*nonceMAC)
	m.in = append(m.in[:0], tag)
	for _, p := range parts {
		m.in = append(m.in, p...)
	}
	m.h.Reset()
	m.h.Write(m.in)
	m.h.Sum(m.sum[:0])
	return m
}

// signature returns HMAC(key, "n" ts)[:8], the signature of the time
// part ts, from last when it is the same time.
func (k *nonceKeeper) signature(ts *[nonceTimeLen]byte) [8]byte {
	if l := k.last.Load(); l != nil && l.ts == *ts {
		return l.sig
	}
	m := k.mac('n', ts[:])
	l := &nonceSig{ts: *ts, sig: [8]byte(m.sum[:8])}
	k.macs.Put(m)
	k.last.Store(l)
	return l.sig
}

// appendBase appends the time and signature parts of a nonce issued now.
func (k *nonceKeeper) appendBase(dst []byte) []byte {
	var t [4]byte
	binary.BigEndian.PutUint32(t[:], uint32(k.now().Unix()))
	var ts [nonceTimeLen]byte
	hex.Encode(ts[:], t[:])
	sig := k.signature(&ts)
	dst = append(dst, ts[:]...)
	return hex.AppendEncode(dst, sig[:])
}

// Generate implements the engine's nonce manager. The address part is
// left as zeros: the socket that sends the response fills it in.
func (k *nonceKeeper) Generate() (string, error) {
	b := k.appendBase(make([]byte, 0, nonceLen))
	for len(b) < nonceLen {
		b = append(b, '0')
	}
	return string(b), nil
}

// appendNonce appends a nonce issued now and bound to ip.
func (k *nonceKeeper) appendNonce(dst []byte, ip netip.Addr) []byte {
	start := len(dst)
	dst = k.appendBase(dst)
	return k.addrTag(dst, dst[start:], ip)
}

// Validate implements the engine's nonce manager: signed by this keeper,
// not expired, and with an address part that is hexadecimal (the sockets
// spoil it when it names another address).
func (k *nonceKeeper) Validate(nonce string) error {
	if !validNonce(k, nonce) {
		return errStaleNonce
	}
	return nil
}

// valid reports whether nonce was issued by k to ip and has not expired,
// as Validate and check together say, without changing it.
func (k *nonceKeeper) valid(nonce []byte, ip netip.Addr) bool {
	if !validNonce(k, nonce) {
		return false
	}
	var tag [24]byte
	return hmac.Equal(nonce[nonceBaseLen:], k.addrTag(tag[:0], nonce[:nonceBaseLen], ip))
}

// validNonce is Validate for a nonce as a string or as bytes.
func validNonce[T string | []byte](k *nonceKeeper, nonce T) bool {
	if len(nonce) != nonceLen {
		return false
	}
	var raw [nonceLen / 2]byte
	for i := range raw {
		hi, ok1 := unhex(nonce[2*i])
		lo, ok2 := unhex(nonce[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		raw[i] = hi<<4 | lo
	}
	issued := time.Unix(int64(binary.BigEndian.Uint32(raw[:4])), 0)
	now := k.now()
	if now.Sub(issued) > nonceLifetime || issued.Sub(now) > nonceFuture {
		return false
	}
	var ts [nonceTimeLen]byte
	for i := range ts {
		ts[i] = nonce[i]
	}
	sig := k.signature(&ts)
	return hmac.Equal(raw[4:12], sig[:])
}

// unhex decodes one hexadecimal digit, either case, as hex.Decode does.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// addrTag appends the address part of nonce base for client ip, in hex.
func (k *nonceKeeper) addrTag(dst []byte, base []byte, ip netip.Addr) []byte {
	a := ip.Unmap().As16()
	m := k.mac('a', base, a[:])
	dst = hex.AppendEncode(dst, m.sum[:12])
	k.macs.Put(m)
	return dst
}

// bind fills in the address part of a nonce the engine is sending to ip,
// in place. v is the NONCE attribute's value.
func (k *nonceKeeper) bind(v []byte, ip netip.Addr) {
	if len(v) != nonceLen {
		return
	}
	var tag [24]byte
	copy(v[nonceBaseLen:], k.addrTag(tag[:0], v[:nonceBaseLen], ip))
}

// check reports whether the nonce v a client sent was issued to ip; if not
// it spoils v in place, so that the engine answers 438 (Stale Nonce) and
// issues a fresh nonce, bound to the sender.
func (k *nonceKeeper) check(v []byte, ip netip.Addr) bool {
	if len(v) == nonceLen {
		var tag [24]byte
		if hmac.Equal(v[nonceBaseLen:], k.addrTag(tag[:0], v[:nonceBaseLen], ip)) {
			return true
		}
	}
	if len(v) > 0 {
		v[0] = 'x'
	}
	return false
}

// installNonces makes k the engine's nonce manager. pion offers no option
// for it, so its unexported field is set; the field's absence (a pion
// upgrade that renamed it) is an error, which stops the service from
// starting rather than silently running with unbound nonces.
//
// Why not pion/turn v5.1.3's public API:
//
//   - ServerConfig has no nonce option; the manager is made in NewServer
//     (NewShortNonceHash) and kept in Server.nonceHash, whose type lives in
//     an internal package.
//   - AuthHandler gets RequestAttributes (Username, Realm, SrcAddr, TLS,
//     Method): no nonce. It runs after the engine has validated the nonce,
//     and its only refusal is ok=false, which the engine answers 401, not
//     438 Stale Nonce (RFC 8489 §9.2.4), sending a client whose nonce was
//     merely issued elsewhere back to its credentials instead of to a
//     retry with a fresh nonce.
//   - pion's own nonce cannot carry the address: its Validate refuses any
//     nonce longer than it issued, and the client's MESSAGE-INTEGRITY
//     covers the NONCE, so a tag appended on the way out cannot be stripped
//     on the way in.
//   - Binding pion's nonces by a table of which address received which
//     nonce would work without this, but costs memory per source, which a
//     spoofed-source flood of unauthenticated requests fills; the stateless
//     HMAC tag here costs nothing per client.
func installNonces(engine *pturn.Server, k *nonceKeeper) error {
	f := reflect.ValueOf(engine).Elem().FieldByName("nonceHash")
	if !f.IsValid() || f.Kind() != reflect.Interface || !reflect.TypeOf(k).Implements(f.Type()) {
		return errEngineNonce
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(k))
	return nil
}
