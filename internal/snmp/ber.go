package snmp

import (
	"errors"
	"fmt"
)

// The decoder below reads only what an agent receives: SNMPv2c and SNMPv3
// messages carrying Get, GetNext, GetBulk or Set requests (RFC 3416) and the
// USM security parameters (RFC 3414 §2.4). It is lenient where real
// managers are (net-snmp writes long-form lengths that are not minimal) and
// strict where it matters: every length is checked against what is left,
// integers and object identifiers are capped, and indefinite lengths are
// refused. Responses are encoded by github.com/gosnmp/gosnmp.

// BER tags the agent reads.
const (
	tagInteger  = 0x02
	tagOctets   = 0x04
	tagNull     = 0x05
	tagOID      = 0x06
	tagSequence = 0x30

	pduGet     = 0xa0
	pduGetNext = 0xa1
	pduSet     = 0xa3
	pduGetBulk = 0xa5
)

// maxOIDLen caps the sub-identifiers of an object identifier (RFC 2578
// §3.5 allows 128).
const maxOIDLen = 128

// maxVarbinds caps the variable bindings of one request.
const maxVarbinds = 256

var errMalformed = errors.New("snmp: malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errMalformed}, args...)...)
}

// element reads one BER element from b: its tag, its contents, and the
// bytes after it.
func element(b []byte) (tag byte, val, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, malformed("truncated element")
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, nil, malformed("multi-byte tag")
	}
	n, hdr := int(b[1]), 2
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 3 {
			return 0, nil, nil, malformed("length of %d octets", k)
		}
		if len(b) < 2+k {
			return 0, nil, nil, malformed("truncated length")
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		hdr += k
	}
	if n > len(b)-hdr {
		return 0, nil, nil, malformed("length %d beyond the %d octets left", n, len(b)-hdr)
	}
	return tag, b[hdr : hdr+n], b[hdr+n:], nil
}

// expect reads an element that must carry tag want.
func expect(b []byte, want byte, what string) (val, rest []byte, err error) {
	tag, val, rest, err := element(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if tag != want {
		return nil, nil, malformed("%s: tag 0x%02x, want 0x%02x", what, tag, want)
	}
	return val, rest, nil
}

// integer reads a signed INTEGER of at most 64 bits.
func integer(b []byte, what string) (int64, []byte, error) {
	val, rest, err := expect(b, tagInteger, what)
	if err != nil {
		return 0, nil, err
	}
	if len(val) == 0 || len(val) > 8 {
		return 0, nil, malformed("%s: integer of %d octets", what, len(val))
	}
	v := int64(int8(val[0]))
	for _, c := range val[1:] {
		v = v<<8 | int64(c)
	}
	return v, rest, nil
}

// parseOID decodes the contents of an OBJECT IDENTIFIER.
func parseOID(b []byte) (oid, error) {
	if len(b) == 0 {
		return nil, malformed("empty object identifier")
	}
	out := make(oid, 0, 16)
	var v uint64
	first := true
	for i, c := range b {
		if v == 0 && c == 0x80 {
			return nil, malformed("object identifier sub-identifier with a leading 0x80")
		}
		v = v<<7 | uint64(c&0x7f)
		if v > 0xffffffff {
			return nil, malformed("object identifier sub-identifier over 32 bits")
		}
		if c&0x80 != 0 {
			if i == len(b)-1 {
				return nil, malformed("truncated object identifier")
			}
			continue
		}
		if first {
			// The first octets hold two arcs: X*40+Y (X is 2 above 80).
			x := min(v/40, 2)
			out = append(out, uint32(x), uint32(v-40*x))
			first = false
		} else {
			out = append(out, uint32(v))
		}
		if len(out) > maxOIDLen {
			return nil, malformed("object identifier over %d sub-identifiers", maxOIDLen)
		}
		v = 0
	}
	return out, nil
}

// request is a decoded request PDU (RFC 3416 §3).
type request struct {
	typ          byte
	id           int32
	nonRepeaters int // GetBulk
	maxReps      int // GetBulk
	oids         []oid
}

// parsePDU decodes a request PDU element (the whole TLV).
func parsePDU(b []byte) (request, error) {
	tag, body, _, err := element(b)
	if err != nil {
		return request{}, fmt.Errorf("pdu: %w", err)
	}
	r := request{typ: tag}
	switch tag {
	case pduGet, pduGetNext, pduSet, pduGetBulk:
	default:
		return r, fmt.Errorf("%w: pdu type 0x%02x", errUnsupportedPDU, tag)
	}
	id, body, err := integer(body, "request-id")
	if err != nil {
		return r, err
	}
	r.id = int32(id)
	a, body, err := integer(body, "error-status")
	if err != nil {
		return r, err
	}
	c, body, err := integer(body, "error-index")
	if err != nil {
		return r, err
	}
	if tag == pduGetBulk {
		r.nonRepeaters, r.maxReps = int(max(0, min(a, maxVarbinds))), int(max(0, min(c, maxVarbinds)))
	}
	vbl, _, err := expect(body, tagSequence, "variable-bindings")
	if err != nil {
		return r, err
	}
	for len(vbl) > 0 {
		if len(r.oids) == maxVarbinds {
			return r, malformed("over %d variable bindings", maxVarbinds)
		}
		var vb []byte
		if vb, vbl, err = expect(vbl, tagSequence, "variable-binding"); err != nil {
			return r, err
		}
		ob, _, err := expect(vb, tagOID, "name")
		if err != nil {
			return r, err
		}
		o, err := parseOID(ob)
		if err != nil {
			return r, err
		}
		r.oids = append(r.oids, o)
	}
	return r, nil
}

// message is a decoded SNMP message up to its PDU.
type message struct {
	version   int64 // 1: v2c, 3: v3
	community []byte
	pdu       []byte // v2c: the PDU element

	// SNMPv3 (RFC 3412 §6)
	msgID    int32
	maxSize  int64
	flags    byte
	usm      usmParams
	scoped   []byte // the scopedPDU element, or the encrypted octets
	authSpan [2]int // offsets of the authentication parameters in the message
}

// usmParams are the USM security parameters (RFC 3414 §2.4).
type usmParams struct {
	engineID    []byte
	boots, time int64
	user        []byte
	auth, priv  []byte
}

// msgFlags (RFC 3412 §6.4).
const (
	flagAuth       = 0x01
	flagPriv       = 0x02
	flagReportable = 0x04
)

// parseMessage decodes the message framing. For v3 the scoped PDU may still
// be encrypted; parseScoped reads it once decrypted.
func parseMessage(b []byte) (message, error) {
	var m message
	body, _, err := expect(b, tagSequence, "message")
	if err != nil {
		return m, err
	}
	if m.version, body, err = integer(body, "version"); err != nil {
		return m, err
	}
	switch m.version {
	case 1:
		if m.community, body, err = expect(body, tagOctets, "community"); err != nil {
			return m, err
		}
		m.pdu = body
		return m, nil
	case 3:
	default:
		return m, fmt.Errorf("%w: version %d", errBadVersion, m.version)
	}
	hdr, body, err := expect(body, tagSequence, "msgGlobalData")
	if err != nil {
		return m, err
	}
	id, hdr, err := integer(hdr, "msgID")
	if err != nil {
		return m, err
	}
	m.msgID = int32(id)
	if m.maxSize, hdr, err = integer(hdr, "msgMaxSize"); err != nil {
		return m, err
	}
	fl, hdr, err := expect(hdr, tagOctets, "msgFlags")
	if err != nil {
		return m, err
	}
	if len(fl) != 1 {
		return m, malformed("msgFlags of %d octets", len(fl))
	}
	m.flags = fl[0]
	if m.flags&(flagAuth|flagPriv) == flagPriv {
		return m, malformed("privacy without authentication")
	}
	model, _, err := integer(hdr, "msgSecurityModel")
	if err != nil {
		return m, err
	}
	if model != 3 {
		return m, fmt.Errorf("%w: security model %d", errBadVersion, model)
	}
	sp, body, err := expect(body, tagOctets, "msgSecurityParameters")
	if err != nil {
		return m, err
	}
	spOff := len(b) - len(body) - len(sp)
	if m.usm, m.authSpan, err = parseUSM(sp); err != nil {
		return m, err
	}
	m.authSpan[0] += spOff
	m.authSpan[1] += spOff
	m.scoped = body
	return m, nil
}

// parseUSM decodes UsmSecurityParameters; span is where the
// authentication parameters sit in b.
func parseUSM(b []byte) (p usmParams, span [2]int, err error) {
	seq, _, err := expect(b, tagSequence, "UsmSecurityParameters")
	if err != nil {
		return p, span, err
	}
	if p.engineID, seq, err = expect(seq, tagOctets, "msgAuthoritativeEngineID"); err != nil {
		return p, span, err
	}
	if p.boots, seq, err = integer(seq, "msgAuthoritativeEngineBoots"); err != nil {
		return p, span, err
	}
	if p.time, seq, err = integer(seq, "msgAuthoritativeEngineTime"); err != nil {
		return p, span, err
	}
	if p.user, seq, err = expect(seq, tagOctets, "msgUserName"); err != nil {
		return p, span, err
	}
	if len(p.engineID) > 32 || len(p.user) > 32 {
		return p, span, malformed("engine ID or user name over 32 octets")
	}
	if p.auth, seq, err = expect(seq, tagOctets, "msgAuthenticationParameters"); err != nil {
		return p, span, err
	}
	span[1] = len(b) - len(seq)
	span[0] = span[1] - len(p.auth)
	if p.priv, _, err = expect(seq, tagOctets, "msgPrivacyParameters"); err != nil {
		return p, span, err
	}
	return p, span, nil
}

// scopedPDU is a decrypted ScopedPDU (RFC 3412 §6.8).
type scopedPDU struct {
	contextEngineID, contextName []byte
	pdu                          []byte
}

func parseScoped(b []byte) (scopedPDU, error) {
	var s scopedPDU
	body, _, err := expect(b, tagSequence, "scopedPDU")
	if err != nil {
		return s, err
	}
	if s.contextEngineID, body, err = expect(body, tagOctets, "contextEngineID"); err != nil {
		return s, err
	}
	if s.contextName, body, err = expect(body, tagOctets, "contextName"); err != nil {
		return s, err
	}
	s.pdu = body
	return s, nil
}
