package turn

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"sync"
)

// The sockets' own STUN codec (RFC 8489 §5 and §14) for the requests they
// answer without the engine: parseRequest reads a request's header and
// attributes in place, and the append functions build a response into a
// caller's buffer, neither allocating.

// STUN methods (RFC 8489 §18.2, RFC 8656 §17).
const (
	methodAllocate = 0x003
	methodRefresh  = 0x004
)

// STUN classes (RFC 8489 §5).
const (
	classRequest         = 0b00
	classSuccessResponse = 0b10
	classErrorResponse   = 0b11
)

// Attributes the codec reads or writes (RFC 8489 §18.3, RFC 8656 §18).
const (
	attrUsername         = 0x0006
	attrMessageIntegrity = 0x0008
	attrErrorCode        = 0x0009
	attrRealm            = 0x0014
	// attrMessageIntegritySHA256 is RFC 8489 §14.6.
	attrMessageIntegritySHA256 = 0x001C
)

// stunRequest is a STUN request as parseRequest read it. Its slices point
// into the message.
type stunRequest struct {
	method uint16
	tid    [12]byte
	// integrity is the offset of the MESSAGE-INTEGRITY attribute, 0 when
	// the request has none.
	integrity int
	// The first USERNAME, REALM, NONCE and LIFETIME, nil when absent.
	username, realm, nonce, lifetime []byte
	// others: a comprehension-required attribute (RFC 8489 §14) besides
	// these and MESSAGE-INTEGRITY came with the request.
	others bool
}

// stunType is the message type of method and class (RFC 8489 §5: the class
// bits are interleaved with the method's).
func stunType(method uint16, class uint8) uint16 {
	return method&0x000F | (method&0x0070)<<1 | (method&0x0F80)<<2 |
		uint16(class&1)<<4 | uint16(class&2)<<7
}

// parseRequest reads b as a STUN request: a header with the magic cookie
// and a length that matches b, and attributes that each fit in it, with
// nothing but FINGERPRINT after MESSAGE-INTEGRITY and no
// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6). It reports false for anything
// else, so that the engine answers it. It trusts no length and does not
// allocate.
func parseRequest(b []byte, r *stunRequest) bool {
	if len(b) < stunHeaderLen || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return false
	}
	t := binary.BigEndian.Uint16(b[0:2])
	if t&0x0110 != 0 { // not class request
		return false
	}
	if n := int(binary.BigEndian.Uint16(b[2:4])); n != len(b)-stunHeaderLen || n%4 != 0 {
		return false
	}
	*r = stunRequest{method: t&0x000F | (t&0x00E0)>>1 | (t&0x3E00)>>2}
	copy(r.tid[:], b[8:stunHeaderLen])
	for off, i := stunHeaderLen, 0; off < len(b); i++ {
		if i == maxAttrsInspected || len(b)-off < 4 {
			return false
		}
		at := binary.BigEndian.Uint16(b[off : off+2])
		l := int(binary.BigEndian.Uint16(b[off+2 : off+4]))
		next := off + 4 + (l+3)&^3
		if next > len(b) {
			return false
		}
		switch {
		case at == attrMessageIntegritySHA256:
			return false // not offered by the engine: it decides
		case r.integrity != 0 && at != attrFingerprint:
			return false // only FINGERPRINT may follow MESSAGE-INTEGRITY
		case at == attrMessageIntegrity:
			r.integrity = off
		case at == attrFingerprint:
		case at == attrUsername:
			r.username = first(r.username, b[off+4:off+4+l])
		case at == attrRealm:
			r.realm = first(r.realm, b[off+4:off+4+l])
		case at == attrNonce:
			r.nonce = first(r.nonce, b[off+4:off+4+l])
		case at == attrLifetime:
			r.lifetime = first(r.lifetime, b[off+4:off+4+l])
		case at < 0x8000:
			r.others = true
		}
		off = next
	}
	return true
}

// first returns have unless it is nil, else v (never nil).
func first(have, v []byte) []byte {
	if have != nil {
		return have
	}
	return v[:len(v):len(v)]
}

// integrityOK reports whether the MESSAGE-INTEGRITY of the request msg, at
// offset at, is the HMAC-SHA1 with key of what precedes it, the header's
// length counting up to its end (RFC 8489 §14.5). msg is restored.
func integrityOK(msg []byte, at int, key []byte) bool {
	if at < stunHeaderLen || at+4+sha1.Size > len(msg) || binary.BigEndian.Uint16(msg[at+2:at+4]) != sha1.Size {
		return false
	}
	var sum [sha1.Size]byte
	length := binary.BigEndian.Uint16(msg[2:4])
	binary.BigEndian.PutUint16(msg[2:4], uint16(at+4+sha1.Size-stunHeaderLen))
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:at])
	binary.BigEndian.PutUint16(msg[2:4], length)
	return hmac.Equal(mac.Sum(sum[:0]), msg[at+4:at+4+sha1.Size])
}

// appendIntegrity appends MESSAGE-INTEGRITY with key to msg (RFC 8489
// §14.5) and sets the message's length.
func appendIntegrity(msg []byte, key []byte) []byte {
	binary.BigEndian.PutUint16(msg[2:4], uint16(len(msg)+4+sha1.Size-stunHeaderLen))
	mac := hmac.New(sha1.New, key)
	mac.Write(msg)
	msg = binary.BigEndian.AppendUint16(msg, attrMessageIntegrity)
	msg = binary.BigEndian.AppendUint16(msg, sha1.Size)
	return mac.Sum(msg)
}

// appendHeader appends a STUN header of method and class with
// transaction ID tid and a zero length; finish sets the length.
func appendHeader(dst []byte, method uint16, class uint8, tid *[12]byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, stunType(method, class))
	dst = binary.BigEndian.AppendUint16(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, stunMagicCookie)
	return append(dst, tid[:]...)
}

// appendAttr appends an attribute of type t and value v, padded to 4
// bytes with zeros.
func appendAttr(dst []byte, t uint16, v []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, t)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(v)))
	dst = append(dst, v...)
	for i := len(v); i%4 != 0; i++ {
		dst = append(dst, 0)
	}
	return dst
}

// appendErrorCode appends an ERROR-CODE attribute (RFC 8489 §14.8) of
// code with its reason phrase.
func appendErrorCode(dst []byte, code int, reason string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, attrErrorCode)
	dst = binary.BigEndian.AppendUint16(dst, uint16(4+len(reason)))
	dst = append(dst, 0, 0, byte(code/100), byte(code%100))
	dst = append(dst, reason...)
	for i := len(reason); i%4 != 0; i++ {
		dst = append(dst, 0)
	}
	return dst
}

// finish sets the length of the message msg, which starts with its header.
func finish(msg []byte) []byte {
	binary.BigEndian.PutUint16(msg[2:4], uint16(len(msg)-stunHeaderLen))
	return msg
}

// respBufs holds the buffers responses are built in: a response is sent
// before its buffer is put back.
var respBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
