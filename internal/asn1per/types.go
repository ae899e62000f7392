package asn1per

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
)

// BitString is a BIT STRING value: Len bits, most significant bit of
// Bytes[0] first.
type BitString struct {
	Bytes []byte
	Len   int
}

// Bit reports bit i (0 is the first bit).
func (b BitString) Bit(i int) bool {
	if i < 0 || i >= b.Len {
		return false
	}
	return b.Bytes[i/8]>>(7-uint(i%8))&1 == 1
}

// ObjectIdentifier holds the BER contents octets of an OBJECT IDENTIFIER
// (X.690 §8.19), which is also its PER encoding; keeping the octets makes
// the round trip exact.
type ObjectIdentifier []byte

// OID builds an ObjectIdentifier from dotted arcs such as "0.0.8.2250.0.4".
// It returns nil when s is not a valid object identifier.
func OID(s string) ObjectIdentifier {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil
	}
	arcs := make([]uint64, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 63)
		if err != nil {
			return nil
		}
		arcs[i] = v
	}
	if arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) {
		return nil
	}
	var out []byte
	out = appendArc(out, arcs[0]*40+arcs[1])
	for _, a := range arcs[2:] {
		out = appendArc(out, a)
	}
	return out
}

func appendArc(dst []byte, v uint64) []byte {
	n := 1
	for t := v >> 7; t != 0; t >>= 7 {
		n++
	}
	for i := n - 1; i >= 0; i-- {
		c := byte(v>>(7*uint(i))) & 0x7f
		if i > 0 {
			c |= 0x80
		}
		dst = append(dst, c)
	}
	return dst
}

// String returns the dotted form, or a hex dump for malformed contents.
func (o ObjectIdentifier) String() string {
	var sb strings.Builder
	var v uint64
	first := true
	for i, c := range o {
		if v > 1<<56 {
			return fmt.Sprintf("invalid-oid(%x)", []byte(o))
		}
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 != 0 {
			if i == len(o)-1 {
				return fmt.Sprintf("invalid-oid(%x)", []byte(o))
			}
			continue
		}
		if first {
			x := v / 40
			if x > 2 {
				x = 2
			}
			sb.WriteString(strconv.FormatUint(x, 10))
			sb.WriteByte('.')
			sb.WriteString(strconv.FormatUint(v-40*x, 10))
			first = false
		} else {
			sb.WriteByte('.')
			sb.WriteString(strconv.FormatUint(v, 10))
		}
		v = 0
	}
	return sb.String()
}

// Equal reports whether two object identifiers have the same octets.
func (o ObjectIdentifier) Equal(p ObjectIdentifier) bool { return string(o) == string(p) }

// BMPString is a BMPString value as UCS-2 code units, kept as units so that
// any received value re-encodes exactly.
type BMPString []uint16

// BMP converts a Go string; characters outside the BMP become surrogate
// pairs.
func BMP(s string) BMPString { return BMPString(utf16.Encode([]rune(s))) }

// String converts to a Go string.
func (b BMPString) String() string { return string(utf16.Decode(b)) }

// RawExt is an extension addition (or extension CHOICE alternative) that
// this version of the generated types does not know: its index and the
// contents of its open type, re-emitted byte for byte.
type RawExt struct {
	Index int
	Data  []byte
}

// Ext records the extension part of an extensible SEQUENCE as received:
// the length of the extension bitmap (so that re-encoding reproduces it)
// and the additions not known to the generated type.
type Ext struct {
	N       int
	Unknown []RawExt
}

// Len returns the bitmap length to encode given that known additions up
// to index lastKnown (exclusive) are present.
func (x *Ext) Len(lastKnown int) int {
	n := x.N
	if lastKnown > n {
		n = lastKnown
	}
	for _, u := range x.Unknown {
		if u.Index+1 > n {
			n = u.Index + 1
		}
	}
	return n
}

// Has reports whether the unknown addition at index i is present.
func (x *Ext) Has(i int) bool {
	for _, u := range x.Unknown {
		if u.Index == i {
			return true
		}
	}
	return false
}

// Present reports whether the SEQUENCE's extension bit must be set.
func (x *Ext) Present() bool { return x.N > 0 || len(x.Unknown) > 0 }

// EncodeUnknown writes the unknown additions as open types, in index order.
func (x *Ext) EncodeUnknown(e *Encoder) {
	for _, u := range x.Unknown {
		e.PutOpenType(u.Data)
	}
}
