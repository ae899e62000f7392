package asn1per

import (
	"fmt"
	"math/bits"
)

// Unbounded marks a size constraint without an upper bound (SIZE (lb..MAX)
// or no size constraint at all).
const Unbounded = -1

// fragment is the X.691 §11.9.3.8 fragment unit (16K).
const fragment = 16384

// Encoder appends an ALIGNED PER encoding bit by bit to a byte slice.
// The zero value is ready to use.
type Encoder struct {
	buf   []byte
	free  uint8 // unused low-order bits of the last byte in buf
	child *Encoder
}

// NewEncoder returns an Encoder that appends to dst.
func NewEncoder(dst []byte) *Encoder { return &Encoder{buf: dst} }

// Reset empties the encoder, keeping its buffer for reuse.
func (e *Encoder) Reset() { e.buf = e.buf[:0]; e.free = 0 }

// Len returns the number of bits written.
func (e *Encoder) Len() int { return len(e.buf)*8 - int(e.free) }

// Bytes returns the encoding, padded with zero bits to a whole octet.
func (e *Encoder) Bytes() []byte { return e.buf }

// Complete returns a complete encoding (X.691 §11.1): an empty encoding
// becomes a single zero octet.
func (e *Encoder) Complete() []byte {
	if len(e.buf) == 0 {
		e.buf = append(e.buf, 0)
	}
	return e.buf
}

// Align pads with zero bits to the next octet boundary.
func (e *Encoder) Align() { e.free = 0 }

// PutBits writes the n (≤ 64) low-order bits of v, most significant first.
func (e *Encoder) PutBits(v uint64, n int) {
	if e.free == 0 && n&7 == 0 {
		for n > 0 {
			n -= 8
			e.buf = append(e.buf, byte(v>>uint(n)))
		}
		return
	}
	for n > 0 {
		if e.free == 0 {
			e.buf = append(e.buf, 0)
			e.free = 8
		}
		take := n
		if take > int(e.free) {
			take = int(e.free)
		}
		chunk := byte(v>>uint(n-take)) & byte(1<<uint(take)-1)
		e.buf[len(e.buf)-1] |= chunk << (e.free - uint8(take))
		e.free -= uint8(take)
		n -= take
	}
}

// PutBool writes one bit.
func (e *Encoder) PutBool(b bool) {
	if b {
		e.PutBits(1, 1)
	} else {
		e.PutBits(0, 1)
	}
}

// PutAlignedBytes aligns and appends b.
func (e *Encoder) PutAlignedBytes(b []byte) {
	e.free = 0
	e.buf = append(e.buf, b...)
}

func octets(v uint64) int {
	if v == 0 {
		return 1
	}
	return (bits.Len64(v) + 7) / 8
}

func (e *Encoder) putOctetsOf(v uint64, n int) {
	e.free = 0
	for i := n - 1; i >= 0; i-- {
		e.buf = append(e.buf, byte(v>>(8*uint(i))))
	}
}

// putRange writes v (0 ≤ v ≤ r-1) as a constrained whole number of range r
// (X.691 §11.5.7, aligned variant). r == 0 means a range of 2^64.
func (e *Encoder) putRange(v, r uint64) {
	switch {
	case r == 1:
	case r != 0 && r <= 255:
		e.PutBits(v, bits.Len64(r-1))
	case r == 256:
		e.putOctetsOf(v, 1)
	case r != 0 && r <= 65536:
		e.putOctetsOf(v, 2)
	default:
		maxOct := octets(r - 1)
		n := octets(v)
		e.putRange(uint64(n-1), uint64(maxOct))
		e.putOctetsOf(v, n)
	}
}

// PutConstrained writes v as a constrained whole number in lb..ub.
func (e *Encoder) PutConstrained(v, lb, ub int64) error {
	if v < lb || v > ub {
		return fmt.Errorf("%w: %d not in %d..%d", ErrConstraint, v, lb, ub)
	}
	e.putRange(uint64(v-lb), uint64(ub-lb)+1)
	return nil
}

// PutInt writes an INTEGER with the given constraint. hasUB false means
// semi-constrained (lb..MAX); hasLB false means unconstrained. ext marks an
// extensible constraint: values outside the root are encoded unconstrained.
func (e *Encoder) PutInt(v int64, hasLB bool, lb int64, hasUB bool, ub int64, ext bool) error {
	inRoot := (!hasLB || v >= lb) && (!hasUB || v <= ub)
	if ext {
		e.PutBool(!inRoot)
		if !inRoot {
			e.PutUnconstrained(v)
			return nil
		}
	}
	switch {
	case hasLB && hasUB:
		return e.PutConstrained(v, lb, ub)
	case hasLB:
		if v < lb {
			return fmt.Errorf("%w: %d below %d", ErrConstraint, v, lb)
		}
		e.PutSemiConstrained(uint64(v - lb))
	default:
		e.PutUnconstrained(v)
	}
	return nil
}

// PutSemiConstrained writes v-lb (already subtracted) as a semi-constrained
// whole number (X.691 §11.7).
func (e *Encoder) PutSemiConstrained(off uint64) {
	n := octets(off)
	e.putUnconstrainedLength(n)
	e.putOctetsOf(off, n)
}

// PutUnconstrained writes v as an unconstrained whole number (X.691 §11.8).
func (e *Encoder) PutUnconstrained(v int64) {
	n := 1
	for n < 8 {
		lim := int64(1) << (8*uint(n) - 1)
		if v >= -lim && v < lim {
			break
		}
		n++
	}
	e.putUnconstrainedLength(n)
	e.putOctetsOf(uint64(v), n)
}

// PutNormallySmall writes a normally small non-negative whole number
// (X.691 §11.6).
func (e *Encoder) PutNormallySmall(n uint64) {
	if n <= 63 {
		e.PutBits(n, 7)
		return
	}
	e.PutBits(1, 1)
	e.PutSemiConstrained(n)
}

// putUnconstrainedLength writes n < 16384 as an unconstrained length
// determinant (X.691 §11.9.3.6-7).
func (e *Encoder) putUnconstrainedLength(n int) {
	e.free = 0
	if n < 128 {
		e.buf = append(e.buf, byte(n))
		return
	}
	e.buf = append(e.buf, 0x80|byte(n>>8), byte(n))
}

// PutLength writes a length determinant for a count n with the size
// constraint lb..ub (ub may be Unbounded) and extensibility ext. Counts that
// would need fragmentation return ErrUnsupported; strings use their own
// fragmenting writers.
func (e *Encoder) PutLength(n, lb, ub int, ext bool) error {
	inRoot := n >= lb && (ub == Unbounded || n <= ub)
	if ext {
		e.PutBool(!inRoot)
	} else if !inRoot {
		return fmt.Errorf("%w: size %d not in %d..%d", ErrConstraint, n, lb, ub)
	}
	if inRoot && ub != Unbounded && ub < 65536 {
		e.putRange(uint64(n-lb), uint64(ub-lb)+1)
		return nil
	}
	if n >= fragment {
		return fmt.Errorf("%w: %d elements need fragmentation", ErrUnsupported, n)
	}
	e.putUnconstrainedLength(n)
	return nil
}

// putFragmented writes an unconstrained length for n units followed by
// the units, fragmenting at 16K units (X.691 §11.9.3.8); emit writes units
// [i, j).
func (e *Encoder) putFragmented(n int, emit func(i, j int)) {
	i := 0
	for n-i >= fragment {
		m := (n - i) / fragment
		if m > 4 {
			m = 4
		}
		e.free = 0
		e.buf = append(e.buf, 0xC0|byte(m))
		emit(i, i+m*fragment)
		i += m * fragment
	}
	e.putUnconstrainedLength(n - i)
	emit(i, n)
}

// sized writes the length part of a size-constrained string of n units
// (OCTET STRING, BIT STRING, character strings). It reports whether the
// caller should write the units now (true) or has delegated to
// putFragmented (false, after calling emit itself). fixedAligned says
// whether a fixed-size value is octet-aligned.
func (e *Encoder) sized(n, lb, ub int, ext bool, fixedAligned, varAligned bool, emit func(i, j int)) error {
	inRoot := n >= lb && (ub == Unbounded || n <= ub)
	if ext {
		e.PutBool(!inRoot)
	} else if !inRoot {
		return fmt.Errorf("%w: size %d not in %d..%d", ErrConstraint, n, lb, ub)
	}
	if inRoot && ub == 0 {
		return nil
	}
	if inRoot && lb == ub && ub < 65536 {
		if fixedAligned {
			e.Align()
		}
		emit(0, n)
		return nil
	}
	if inRoot && ub != Unbounded && ub < 65536 {
		e.putRange(uint64(n-lb), uint64(ub-lb)+1)
		if n > 0 && varAligned {
			e.Align()
		}
		emit(0, n)
		return nil
	}
	e.putFragmented(n, emit)
	return nil
}

// PutOctetString writes an OCTET STRING with size constraint lb..ub.
func (e *Encoder) PutOctetString(b []byte, lb, ub int, ext bool) error {
	return e.sized(len(b), lb, ub, ext, ub > 2, true, func(i, j int) {
		if e.free == 0 {
			e.buf = append(e.buf, b[i:j]...)
			return
		}
		for _, c := range b[i:j] {
			e.PutBits(uint64(c), 8)
		}
	})
}

// PutBitString writes a BIT STRING with size constraint lb..ub (in bits).
func (e *Encoder) PutBitString(s BitString, lb, ub int, ext bool) error {
	if s.Len < 0 || s.Len > len(s.Bytes)*8 {
		return fmt.Errorf("%w: bit string length %d with %d bytes", ErrConstraint, s.Len, len(s.Bytes))
	}
	return e.sized(s.Len, lb, ub, ext, ub > 16, true, func(i, j int) {
		for k := i; k < j; k++ {
			e.PutBits(uint64(s.Bytes[k/8]>>(7-uint(k%8))), 1)
		}
	})
}

// PutOpenType writes b, a complete encoding (at least one octet, see
// Complete), as an open type field (X.691 §11.2): an unconstrained,
// possibly fragmented, octet length. An empty b is written as received
// (length 0) so that non-conforming input still re-encodes exactly.
func (e *Encoder) PutOpenType(b []byte) {
	e.putFragmented(len(b), func(i, j int) { e.buf = append(e.buf, b[i:j]...) })
}

// Begin returns a child encoder for a value that will be wrapped as an open
// type; finish it with EndOpen. Children are reused between calls.
func (e *Encoder) Begin() *Encoder {
	if e.child == nil {
		e.child = &Encoder{}
	}
	e.child.Reset()
	return e.child
}

// EndOpen writes the child's complete encoding as an open type.
func (e *Encoder) EndOpen(c *Encoder) { e.PutOpenType(c.Complete()) }

// PutObjectIdentifier writes an OBJECT IDENTIFIER (X.691 §24): the BER
// contents octets behind an unconstrained length.
func (e *Encoder) PutObjectIdentifier(oid ObjectIdentifier) error {
	if len(oid) == 0 || len(oid) >= fragment {
		return fmt.Errorf("%w: object identifier of %d octets", ErrConstraint, len(oid))
	}
	e.putUnconstrainedLength(len(oid))
	e.buf = append(e.buf, oid...)
	return nil
}

// PutEnum writes an ENUMERATED index: v < n is a root index, v ≥ n the
// extension addition v-n (X.691 §14).
func (e *Encoder) PutEnum(v, n int, ext bool) error {
	if ext {
		e.PutBool(v >= n)
		if v >= n {
			e.PutNormallySmall(uint64(v - n))
			return nil
		}
	}
	if v < 0 || v >= n {
		return fmt.Errorf("%w: enumeration index %d of %d", ErrConstraint, v, n)
	}
	e.putRange(uint64(v), uint64(n))
	return nil
}

// PutChoice writes a CHOICE index: idx < n is a root alternative, idx ≥ n
// the extension alternative idx-n, whose value the caller then writes as
// an open type (X.691 §23).
func (e *Encoder) PutChoice(idx, n int, ext bool) error {
	return e.PutEnum(idx, n, ext)
}

// PutExtBitmapLen writes the length of a SEQUENCE extension-addition
// bitmap as a normally small length (X.691 §11.9.3.4, §19.8).
func (e *Encoder) PutExtBitmapLen(n int) {
	if n >= 1 && n <= 64 {
		e.PutBits(uint64(n-1), 7)
		return
	}
	e.PutBits(1, 1)
	e.putUnconstrainedLength(n)
}
