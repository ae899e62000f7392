// Package ldap frames LDAP messages (RFC 4511 §4.1.1 LDAPMessage envelope,
// BER definite-length encoding per RFC 4511 §5.1 and X.690 §8.1) for the
// access proxy: it finds message boundaries, reads the message ID and the
// protocolOp tag, extracts the few fields a read-only policy needs (search
// base DN, bind name, extended request OID) and writes the LDAPResult
// replies the proxy sends itself (refusals, the StartTLS response).
//
// Everything here is pure: no I/O, no panics on input, every length capped.
package ldap

import (
	"errors"
	"strings"
)

// Errors returned by the codec.
var (
	// ErrShort means b ends before the message does; read more and retry.
	ErrShort = errors.New("ldap: need more bytes")
	// ErrMalformed means the BER encoding is invalid for an LDAPMessage.
	ErrMalformed = errors.New("ldap: malformed message")
	// ErrTooLarge means the message is longer than the caller's limit.
	ErrTooLarge = errors.New("ldap: message too large")
)

// Application tags of protocolOp (RFC 4511 §4.2–4.14), as the full BER
// identifier byte (class APPLICATION, constructed or primitive).
const (
	BindRequest           byte = 0x60
	BindResponse          byte = 0x61
	UnbindRequest         byte = 0x42
	SearchRequest         byte = 0x63
	SearchResultEntry     byte = 0x64
	SearchResultDone      byte = 0x65
	ModifyRequest         byte = 0x66
	ModifyResponse        byte = 0x67
	AddRequest            byte = 0x68
	AddResponse           byte = 0x69
	DelRequest            byte = 0x4a
	DelResponse           byte = 0x6b
	ModifyDNRequest       byte = 0x6c
	ModifyDNResponse      byte = 0x6d
	CompareRequest        byte = 0x6e
	CompareResponse       byte = 0x6f
	AbandonRequest        byte = 0x50
	SearchResultReference byte = 0x73
	ExtendedRequest       byte = 0x77
	ExtendedResponse      byte = 0x78
	IntermediateResponse  byte = 0x79
)

// Result codes used by the proxy (RFC 4511 §4.1.9).
const (
	Success                  = 0
	OperationsError          = 1
	ProtocolError            = 2
	ConfidentialityRequired  = 13
	NoSuchObject             = 32
	InsufficientAccessRights = 50
	Unavailable              = 52
	UnwillingToPerform       = 53
)

// StartTLSOID is the StartTLS extended operation name (RFC 4511 §4.14.1).
const StartTLSOID = "1.3.6.1.4.1.1466.20037"

// Message is one framed LDAPMessage. Slices alias the input.
type Message struct {
	ID int32
	// Op is the protocolOp's BER identifier byte (BindRequest, SearchRequest ...).
	Op byte
	// Body is the protocolOp's contents (without its tag and length).
	Body []byte
	// Len is the whole message's length in bytes.
	Len int
}

// readTL reads a BER identifier (single byte: LDAP uses no high tag
// numbers) and a definite length. It returns tag, content offset, content
// length.
func readTL(b []byte) (tag byte, hdr, n int, err error) {
	if len(b) < 2 {
		return 0, 0, 0, ErrShort
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, 0, 0, ErrMalformed
	}
	l := b[1]
	if l < 0x80 {
		return tag, 2, int(l), nil
	}
	k := int(l & 0x7f)
	if k == 0 || k > 4 { // indefinite form is not allowed in LDAP; 4 bytes is 4 GiB
		return 0, 0, 0, ErrMalformed
	}
	if len(b) < 2+k {
		return 0, 0, 0, ErrShort
	}
	v := 0
	for _, c := range b[2 : 2+k] {
		v = v<<8 | int(c)
	}
	if v < 0 || v > 1<<31-1 {
		return 0, 0, 0, ErrMalformed
	}
	return tag, 2 + k, v, nil
}

// Frame returns the length of the LDAPMessage at the start of b without
// decoding it, or ErrShort, ErrMalformed, ErrTooLarge (over max bytes).
func Frame(b []byte, max int) (int, error) {
	if len(b) == 0 {
		return 0, ErrShort
	}
	if b[0] != 0x30 {
		return 0, ErrMalformed
	}
	_, hdr, n, err := readTL(b)
	if err != nil {
		return 0, err
	}
	if hdr+n > max {
		return 0, ErrTooLarge
	}
	return hdr + n, nil
}

// Parse decodes the envelope of the LDAPMessage at the start of b.
func Parse(b []byte, max int) (Message, error) {
	total, err := Frame(b, max)
	if err != nil {
		return Message{}, err
	}
	if len(b) < total {
		return Message{}, ErrShort
	}
	_, hdr, _, _ := readTL(b)
	seq := b[hdr:total]
	// messageID INTEGER (0 .. maxInt)
	tag, h, n, err := readTL(seq)
	if err != nil || tag != 0x02 || n < 1 || n > 4 || h+n > len(seq) {
		return Message{}, ErrMalformed
	}
	idb := seq[h : h+n]
	if idb[0]&0x80 != 0 || (n > 1 && idb[0] == 0 && idb[1]&0x80 == 0) {
		return Message{}, ErrMalformed // negative or non-minimal
	}
	var id int32
	for _, c := range idb {
		id = id<<8 | int32(c)
	}
	seq = seq[h+n:]
	tag, h, n, err = readTL(seq)
	if err != nil || h+n > len(seq) || tag&0xc0 != 0x40 {
		return Message{}, ErrMalformed
	}
	m := Message{ID: id, Op: tag, Body: seq[h : h+n], Len: total}
	rest := seq[h+n:]
	if len(rest) > 0 { // controls [0] Controls OPTIONAL
		ctag, ch, cn, err := readTL(rest)
		if err != nil || ctag != 0xa0 || ch+cn != len(rest) {
			return Message{}, ErrMalformed
		}
	}
	return m, nil
}

// firstOctetString returns the first element of a SEQUENCE body when it is
// an OCTET STRING (universal 4) or a context tag ctx (when ctx != 0).
func element(body []byte, want byte) ([]byte, []byte, error) {
	tag, h, n, err := readTL(body)
	if err != nil || h+n > len(body) {
		return nil, nil, ErrMalformed
	}
	if tag != want {
		return nil, nil, ErrMalformed
	}
	return body[h : h+n], body[h+n:], nil
}

// SearchBaseDN returns a SearchRequest's baseObject (RFC 4511 §4.5.1).
func SearchBaseDN(body []byte) (string, error) {
	v, _, err := element(body, 0x04)
	return string(v), err
}

// BindName returns a BindRequest's name (RFC 4511 §4.2).
func BindName(body []byte) (string, error) {
	_, rest, err := element(body, 0x02) // version
	if err != nil {
		return "", err
	}
	v, _, err := element(rest, 0x04)
	return string(v), err
}

// ExtendedName returns an ExtendedRequest's requestName (RFC 4511 §4.12).
func ExtendedName(body []byte) (string, error) {
	v, _, err := element(body, 0x80)
	return string(v), err
}

// ResultCode returns the resultCode of an LDAPResult-shaped response body.
func ResultCode(body []byte) (int, error) {
	v, _, err := element(body, 0x0a)
	if err != nil || len(v) < 1 || len(v) > 4 {
		return 0, ErrMalformed
	}
	c := 0
	for _, x := range v {
		c = c<<8 | int(x)
	}
	return c, nil
}

// ResponseTag returns the response protocolOp for a request tag, or 0 for
// requests without a response (unbind, abandon).
func ResponseTag(req byte) byte {
	switch req {
	case BindRequest:
		return BindResponse
	case SearchRequest:
		return SearchResultDone
	case ModifyRequest:
		return ModifyResponse
	case AddRequest:
		return AddResponse
	case DelRequest:
		return DelResponse
	case ModifyDNRequest:
		return ModifyDNResponse
	case CompareRequest:
		return CompareResponse
	case ExtendedRequest:
		return ExtendedResponse
	}
	return 0
}

func appendTL(dst []byte, tag byte, n int) []byte {
	dst = append(dst, tag)
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n < 0x100:
		return append(dst, 0x81, byte(n))
	case n < 0x10000:
		return append(dst, 0x82, byte(n>>8), byte(n))
	default:
		return append(dst, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendInt(dst []byte, tag byte, v int32) []byte {
	var b [5]byte
	i := len(b)
	u := uint32(v)
	for {
		i--
		b[i] = byte(u)
		u >>= 8
		if u == 0 {
			break
		}
	}
	if b[i]&0x80 != 0 {
		i--
		b[i] = 0
	}
	dst = appendTL(dst, tag, len(b)-i)
	return append(dst, b[i:]...)
}

func appendString(dst []byte, tag byte, s string) []byte {
	return append(appendTL(dst, tag, len(s)), s...)
}

// AppendResult appends an LDAPMessage carrying an LDAPResult-shaped
// response op (resultCode, matchedDN, diagnosticMessage), with an optional
// responseName for ExtendedResponse (RFC 4511 §4.12).
func AppendResult(dst []byte, id int32, op byte, code int, matchedDN, diag, responseName string) []byte {
	var body []byte
	body = appendInt(body, 0x0a, int32(code))
	body = appendString(body, 0x04, matchedDN)
	body = appendString(body, 0x04, diag)
	if op == ExtendedResponse && responseName != "" {
		body = appendString(body, 0x8a, responseName)
	}
	var inner []byte
	inner = appendInt(inner, 0x02, id)
	inner = appendTL(inner, op, len(body))
	inner = append(inner, body...)
	dst = appendTL(dst, 0x30, len(inner))
	return append(dst, inner...)
}

// AppendExtendedRequest appends an ExtendedRequest with no value (StartTLS).
func AppendExtendedRequest(dst []byte, id int32, oid string) []byte {
	var body []byte
	body = appendString(body, 0x80, oid)
	var inner []byte
	inner = appendInt(inner, 0x02, id)
	inner = appendTL(inner, ExtendedRequest, len(body))
	inner = append(inner, body...)
	dst = appendTL(dst, 0x30, len(inner))
	return append(dst, inner...)
}

// UnderBase reports whether dn equals base or lies beneath it. DNs are
// compared case-insensitively per RDN with spaces around separators
// removed (enough for policy on directory trees; not full RFC 4514 matching).
// An empty base matches everything.
func UnderBase(dn, base string) bool {
	if base == "" {
		return true
	}
	d, b := normDN(dn), normDN(base)
	if len(b) > len(d) {
		return false
	}
	for i := range b {
		if d[len(d)-len(b)+i] != b[i] {
			return false
		}
	}
	return true
}

func normDN(dn string) []string {
	if strings.TrimSpace(dn) == "" {
		return nil
	}
	var out []string
	start := 0
	for i := 0; i <= len(dn); i++ {
		if i == len(dn) || (dn[i] == ',' && (i == 0 || dn[i-1] != '\\')) {
			rdn := dn[start:i]
			if eq := strings.IndexByte(rdn, '='); eq >= 0 {
				rdn = strings.TrimSpace(rdn[:eq]) + "=" + strings.TrimSpace(rdn[eq+1:])
			}
			out = append(out, strings.ToLower(strings.TrimSpace(rdn)))
			start = i + 1
		}
	}
	return out
}
