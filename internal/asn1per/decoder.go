package asn1per

import (
	"fmt"
	"math/bits"
)

// MaxDepth bounds the nesting of constructed values a Decoder accepts.
const MaxDepth = 100

// Decoder reads an ALIGNED PER encoding. Every length it reads is checked
// against the remaining input, so malformed input yields an error rather
// than a large allocation or a panic. Decoded OCTET STRING, OBJECT
// IDENTIFIER and open-type values alias the input buffer.
//
// Short decoded character strings and BMPStrings share blocks of storage
// that the Decoder allocates and keeps across Init, so that a Decoder
// reused for many messages allocates little for them; a block stays in
// memory while any string in it is referenced.
type Decoder struct {
	buf   []byte
	pos   int // bit position
	depth int
	// text and units hold decoded strings. They are only ever appended
	// to: what lies below their length belongs to values already returned.
	text  []byte
	units []uint16
}

// Sizes of the blocks holding decoded strings: a Decoder's first block is
// small, so that decoding one message with a fresh Decoder costs no more
// than allocating its strings one by one, and each next block is twice as
// large up to the maximum. Longer strings get storage of their own.
const (
	firstBlock = 32
	textBlock  = 512
	unitsBlock = 256
)

// nextBlock returns the capacity of the block following one of capacity
// c that must hold at least n more elements.
func nextBlock(c, n, limit int) int {
	return max(min(max(2*c, firstBlock), limit), n)
}

// NewDecoder returns a Decoder reading b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Init resets d to read b. The string storage is kept.
func (d *Decoder) Init(b []byte) { d.buf, d.pos, d.depth = b, 0, 0 }

// Frame is the input position that Push saves and Pop restores.
type Frame struct {
	buf []byte
	pos int
}

// Push makes d read b, the contents of an open type, until Pop(f) with
// the Frame it returns; nesting depth and string storage carry over.
func (d *Decoder) Push(b []byte) Frame {
	f := Frame{d.buf, d.pos}
	d.buf, d.pos = b, 0
	return f
}

// Pop returns to the input saved by Push.
func (d *Decoder) Pop(f Frame) { d.buf, d.pos = f.buf, f.pos }

// Remaining returns the number of unread bits.
func (d *Decoder) Remaining() int { return len(d.buf)*8 - d.pos }

// Pos returns the bit position.
func (d *Decoder) Pos() int { return d.pos }

// Enter records one more level of nesting; generated constructed types call
// it on entry and Leave on success.
func (d *Decoder) Enter() error {
	d.depth++
	if d.depth > MaxDepth {
		return ErrTooDeep
	}
	return nil
}

// Leave undoes Enter.
func (d *Decoder) Leave() { d.depth-- }

// Align skips to the next octet boundary.
func (d *Decoder) Align() { d.pos = (d.pos + 7) &^ 7 }

// Bits reads n (≤ 64) bits.
func (d *Decoder) Bits(n int) (uint64, error) {
	if n == 0 {
		return 0, nil
	}
	if n > 64 || d.pos+n > len(d.buf)*8 {
		return 0, ErrTruncated
	}
	if off := d.pos & 7; off+n <= 8 {
		// Within one octet: the common case of presence bits, choice
		// indexes and small constrained numbers.
		v := uint64(d.buf[d.pos>>3]>>uint(8-off-n)) & (1<<uint(n) - 1)
		d.pos += n
		return v, nil
	}
	var v uint64
	if d.pos&7 == 0 && n&7 == 0 {
		i := d.pos >> 3
		for k := 0; k < n>>3; k++ {
			v = v<<8 | uint64(d.buf[i+k])
		}
		d.pos += n
		return v, nil
	}
	for n > 0 {
		i := d.pos >> 3
		off := d.pos & 7
		avail := 8 - off
		take := n
		if take > avail {
			take = avail
		}
		c := uint64(d.buf[i]>>uint(avail-take)) & (1<<uint(take) - 1)
		v = v<<uint(take) | c
		d.pos += take
		n -= take
	}
	return v, nil
}

// Bool reads one bit.
func (d *Decoder) Bool() (bool, error) {
	if d.pos >= len(d.buf)*8 {
		return false, ErrTruncated
	}
	b := d.buf[d.pos>>3]>>(7-uint(d.pos&7))&1 == 1
	d.pos++
	return b, nil
}

// AlignedBytes aligns and returns the next n octets (aliasing the input).
func (d *Decoder) AlignedBytes(n int) ([]byte, error) {
	d.Align()
	if n < 0 || n > (len(d.buf)*8-d.pos)/8 {
		return nil, ErrTruncated
	}
	i := d.pos >> 3
	d.pos += n * 8
	return d.buf[i : i+n : i+n], nil
}

func (d *Decoder) octetsOf(n int) (uint64, error) {
	b, err := d.AlignedBytes(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// getRange reads a constrained whole number of range r (0 = 2^64).
func (d *Decoder) getRange(r uint64) (uint64, error) {
	switch {
	case r == 1:
		return 0, nil
	case r != 0 && r <= 255:
		v, err := d.Bits(bits.Len64(r - 1))
		if err == nil && v >= r {
			err = fmt.Errorf("%w: %d not below range %d", ErrConstraint, v, r)
		}
		return v, err
	case r == 256:
		return d.octetsOf(1)
	case r != 0 && r <= 65536:
		v, err := d.octetsOf(2)
		if err == nil && v >= r {
			err = fmt.Errorf("%w: %d not below range %d", ErrConstraint, v, r)
		}
		return v, err
	default:
		maxOct := octets(r - 1)
		n, err := d.getRange(uint64(maxOct))
		if err != nil {
			return 0, err
		}
		v, err := d.octetsOf(int(n) + 1)
		if err == nil && r != 0 && v >= r {
			err = fmt.Errorf("%w: %d not below range %d", ErrConstraint, v, r)
		}
		return v, err
	}
}

// Constrained reads a constrained whole number in lb..ub.
func (d *Decoder) Constrained(lb, ub int64) (int64, error) {
	v, err := d.getRange(uint64(ub-lb) + 1)
	return lb + int64(v), err
}

// Int reads an INTEGER encoded by Encoder.PutInt with the same constraint.
func (d *Decoder) Int(hasLB bool, lb int64, hasUB bool, ub int64, ext bool) (int64, error) {
	if ext {
		out, err := d.Bool()
		if err != nil {
			return 0, err
		}
		if out {
			return d.Unconstrained()
		}
	}
	switch {
	case hasLB && hasUB:
		return d.Constrained(lb, ub)
	case hasLB:
		v, err := d.SemiConstrained()
		return lb + int64(v), err
	default:
		return d.Unconstrained()
	}
}

// SemiConstrained reads the offset of a semi-constrained whole number.
func (d *Decoder) SemiConstrained() (uint64, error) {
	n, err := d.unconstrainedLength()
	if err != nil {
		return 0, err
	}
	if err := d.intLength(n); err != nil {
		return 0, err
	}
	return d.octetsOf(n)
}

// intLength checks the octet count n of a semi-constrained or
// unconstrained whole number. Cut-off input usually shows as a length
// beyond what is left, so that is reported as truncation first.
func (d *Decoder) intLength(n int) error {
	if n*8 > d.Remaining() {
		return fmt.Errorf("%w: %d-octet integer, %d bits left", ErrTruncated, n, d.Remaining())
	}
	if n < 1 || n > 8 {
		return fmt.Errorf("%w: %d-octet integer", ErrUnsupported, n)
	}
	return nil
}

// Unconstrained reads an unconstrained (two's complement) whole number.
func (d *Decoder) Unconstrained() (int64, error) {
	n, err := d.unconstrainedLength()
	if err != nil {
		return 0, err
	}
	if err := d.intLength(n); err != nil {
		return 0, err
	}
	v, err := d.octetsOf(n)
	shift := 64 - 8*uint(n)
	return int64(v<<shift) >> shift, err
}

// NormallySmall reads a normally small non-negative whole number.
func (d *Decoder) NormallySmall() (uint64, error) {
	v, err := d.Bits(7)
	if err != nil {
		return 0, err
	}
	if v < 64 {
		return v, nil
	}
	d.pos -= 6
	return d.SemiConstrained()
}

// unconstrainedLength reads a length determinant < 16384; a fragmentation
// prefix is reported as ErrUnsupported.
func (d *Decoder) unconstrainedLength() (int, error) {
	n, frag, err := d.lengthOrFragment()
	if err == nil && frag {
		err = fmt.Errorf("%w: fragmented length", ErrUnsupported)
	}
	return n, err
}

// lengthOrFragment reads an aligned length determinant; frag reports a
// fragment of n units (a multiple of 16K).
func (d *Decoder) lengthOrFragment() (n int, frag bool, err error) {
	v, err := d.octetsOf(1)
	if err != nil {
		return 0, false, err
	}
	switch {
	case v&0x80 == 0:
		return int(v), false, nil
	case v&0xC0 == 0x80:
		lo, err := d.octetsOf(1)
		return int(v&0x3f)<<8 | int(lo), false, err
	default:
		m := int(v & 0x3f)
		if m < 1 || m > 4 {
			return 0, false, fmt.Errorf("%w: fragment count %d", ErrConstraint, m)
		}
		return m * fragment, true, nil
	}
}

// Length reads a length determinant written by Encoder.PutLength. Each
// counted element must take at least minBits bits; the count is checked
// against the remaining input with it (use 0 for elements that may be
// empty, which are then bounded by 16383 or ub).
func (d *Decoder) Length(lb, ub int, ext bool, minBits int) (int, error) {
	out := false
	if ext {
		var err error
		if out, err = d.Bool(); err != nil {
			return 0, err
		}
	}
	var n int
	if !out && ub != Unbounded && ub < 65536 {
		v, err := d.getRange(uint64(ub-lb) + 1)
		if err != nil {
			return 0, err
		}
		n = lb + int(v)
	} else {
		v, err := d.unconstrainedLength()
		if err != nil {
			return 0, err
		}
		n = v
		if !out && n < lb {
			return 0, fmt.Errorf("%w: size %d below %d", ErrConstraint, n, lb)
		}
	}
	// More elements than the input left can hold: cut-off input shows
	// this way, and a forged count is stopped before any allocation.
	if minBits > 0 && n > d.Remaining()/minBits {
		return 0, fmt.Errorf("%w: %d elements in %d bits", ErrTruncated, n, d.Remaining())
	}
	return n, nil
}

// ExtBitmapLen reads the length of a SEQUENCE extension bitmap.
func (d *Decoder) ExtBitmapLen() (int, error) {
	v, err := d.Bits(7)
	if err != nil {
		return 0, err
	}
	if v < 64 {
		return int(v) + 1, nil
	}
	d.pos -= 6
	n, err := d.unconstrainedLength()
	if err == nil && n > d.Remaining() {
		err = fmt.Errorf("%w: extension bitmap of %d bits in %d", ErrTruncated, n, d.Remaining())
	}
	return n, err
}

// Enum reads an ENUMERATED index (see Encoder.PutEnum).
func (d *Decoder) Enum(n int, ext bool) (int, error) {
	if ext {
		out, err := d.Bool()
		if err != nil {
			return 0, err
		}
		if out {
			v, err := d.NormallySmall()
			if err != nil {
				return 0, err
			}
			if v > 1<<20 {
				return 0, fmt.Errorf("%w: extension index %d", ErrTooLong, v)
			}
			return n + int(v), nil
		}
	}
	v, err := d.getRange(uint64(n))
	return int(v), err
}

// Choice reads a CHOICE index (see Encoder.PutChoice).
func (d *Decoder) Choice(n int, ext bool) (int, error) { return d.Enum(n, ext) }

// OpenType reads an open type's contents (aliasing the input unless it
// was fragmented).
func (d *Decoder) OpenType() ([]byte, error) {
	var out []byte
	for {
		n, frag, err := d.lengthOrFragment()
		if err != nil {
			return nil, err
		}
		b, err := d.AlignedBytes(n)
		if err != nil {
			return nil, err
		}
		if !frag && out == nil {
			return b, nil
		}
		out = append(out, b...)
		if !frag {
			return out, nil
		}
	}
}

// ObjectIdentifier reads an OBJECT IDENTIFIER's contents octets.
func (d *Decoder) ObjectIdentifier() (ObjectIdentifier, error) {
	n, err := d.unconstrainedLength()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty object identifier", ErrConstraint)
	}
	b, err := d.AlignedBytes(n)
	return ObjectIdentifier(b), err
}

// ExtUnknown reads the open types of the unknown additions whose bits are
// set in bitmap (bit i for addition i, i ≥ known) into x.
func (d *Decoder) ExtUnknown(x *Ext, present []bool, known int) error {
	for i := known; i < len(present); i++ {
		if !present[i] {
			continue
		}
		b, err := d.OpenType()
		if err != nil {
			return err
		}
		x.Unknown = append(x.Unknown, RawExt{Index: i, Data: b})
	}
	return nil
}

// ExtBitmap reads the extension bitmap (length and bits) into buf, which
// is reused when large enough.
func (d *Decoder) ExtBitmap(buf []bool) ([]bool, error) {
	n, err := d.ExtBitmapLen()
	if err != nil {
		return nil, err
	}
	if cap(buf) >= n {
		buf = buf[:n]
	} else {
		buf = make([]bool, n)
	}
	for i := 0; i < n; {
		k := min(n-i, 56)
		v, err := d.Bits(k)
		if err != nil {
			return nil, err
		}
		for j := 0; j < k; j++ {
			buf[i+j] = v>>uint(k-1-j)&1 == 1
		}
		i += k
	}
	return buf, nil
}

// sized reads the length part of a size-constrained string of units of
// unitBits bits and calls read for each run of units (several runs when
// fragmented). It mirrors Encoder.sized.
func (d *Decoder) sized(lb, ub int, ext, fixedAligned, varAligned bool, unitBits int, read func(n int) error) error {
	out := false
	if ext {
		var err error
		if out, err = d.Bool(); err != nil {
			return err
		}
	}
	check := func(n int) error {
		if unitBits > 0 && n > d.Remaining()/unitBits {
			return fmt.Errorf("%w: %d units of %d bits in %d bits", ErrTruncated, n, unitBits, d.Remaining())
		}
		return nil
	}
	if !out && ub == 0 {
		return nil
	}
	if !out && lb == ub && ub < 65536 {
		if fixedAligned {
			d.Align()
		}
		if err := check(lb); err != nil {
			return err
		}
		return read(lb)
	}
	if !out && ub != Unbounded && ub < 65536 {
		v, err := d.getRange(uint64(ub-lb) + 1)
		if err != nil {
			return err
		}
		n := lb + int(v)
		if n > 0 && varAligned {
			d.Align()
		}
		if err := check(n); err != nil {
			return err
		}
		return read(n)
	}
	total := 0
	for {
		n, frag, err := d.lengthOrFragment()
		if err != nil {
			return err
		}
		if err := check(n); err != nil {
			return err
		}
		if err := read(n); err != nil {
			return err
		}
		total += n
		if !frag {
			break
		}
	}
	if !out && (total < lb || (ub != Unbounded && total > ub)) {
		return fmt.Errorf("%w: size %d not in %d..%d", ErrConstraint, total, lb, ub)
	}
	return nil
}

// OctetString reads an OCTET STRING with size constraint lb..ub. The
// result aliases the input when it was octet-aligned and unfragmented.
func (d *Decoder) OctetString(lb, ub int, ext bool) ([]byte, error) {
	var out []byte
	first := true
	err := d.sized(lb, ub, ext, ub > 2, true, 8, func(n int) error {
		if d.pos&7 == 0 {
			b, err := d.AlignedBytes(n)
			if err != nil {
				return err
			}
			if first {
				out = b
			} else {
				out = append(out[:len(out):len(out)], b...)
			}
			first = false
			return nil
		}
		first = false
		for i := 0; i < n; i++ {
			v, err := d.Bits(8)
			if err != nil {
				return err
			}
			out = append(out, byte(v))
		}
		return nil
	})
	if out == nil && err == nil {
		out = []byte{}
	}
	return out, err
}

// BitString reads a BIT STRING with size constraint lb..ub (in bits).
func (d *Decoder) BitString(lb, ub int, ext bool) (BitString, error) {
	var s BitString
	err := d.sized(lb, ub, ext, ub > 16, true, 1, func(n int) error {
		for i := 0; i < n; i++ {
			b, err := d.Bool()
			if err != nil {
				return err
			}
			if s.Len%8 == 0 {
				s.Bytes = append(s.Bytes, 0)
			}
			if b {
				s.Bytes[s.Len/8] |= 0x80 >> uint(s.Len%8)
			}
			s.Len++
		}
		return nil
	})
	return s, err
}
