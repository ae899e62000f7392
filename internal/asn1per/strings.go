package asn1per

import (
	"fmt"
	"math/bits"
	"sort"
	"unsafe"
)

// String kinds (X.680 §41, known-multiplier character string types).
const (
	IA5 = iota
	Printable
	Numeric
	Visible
)

// CharSet is the effective permitted alphabet of a restricted character
// string type with its ALIGNED PER character encoding (X.691 §30.5): the
// width B in bits (1, 2, 4 or 8) and whether characters are encoded by
// value or by index in the sorted alphabet.
type CharSet struct {
	chars []byte
	pos   [256]int16 // index in chars, or -1
	width int
	index bool
}

func canonical(kind int) []byte {
	var b []byte
	switch kind {
	case Printable:
		b = []byte(" '()+,-./0123456789:=?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
	case Numeric:
		b = []byte(" 0123456789")
	case Visible:
		for c := 32; c <= 126; c++ {
			b = append(b, byte(c))
		}
	default:
		for c := 0; c <= 127; c++ {
			b = append(b, byte(c))
		}
	}
	return b
}

// NewCharSet builds the character set of a string type of the given kind,
// restricted to the characters of from when from is not empty.
func NewCharSet(kind int, from string) *CharSet {
	chars := canonical(kind)
	if from != "" {
		seen := map[byte]bool{}
		chars = chars[:0:0]
		for i := 0; i < len(from); i++ {
			if !seen[from[i]] {
				seen[from[i]] = true
				chars = append(chars, from[i])
			}
		}
		sort.Slice(chars, func(i, j int) bool { return chars[i] < chars[j] })
	}
	cs := &CharSet{chars: chars}
	for i := range cs.pos {
		cs.pos[i] = -1
	}
	for i, c := range chars {
		cs.pos[c] = int16(i)
	}
	b := bits.Len(uint(len(chars) - 1))
	cs.width = 1
	for cs.width < b {
		cs.width *= 2
	}
	cs.index = int(chars[len(chars)-1]) > 1<<uint(cs.width)-1
	return cs
}

// Width returns the bits per character in ALIGNED PER.
func (cs *CharSet) Width() int { return cs.width }

// PutString writes a restricted character string with size constraint
// lb..ub (in characters).
func (e *Encoder) PutString(s string, cs *CharSet, lb, ub int, ext bool) error {
	w := cs.width
	for i := 0; i < len(s); i++ {
		c := s[i]
		if cs.index && cs.pos[c] < 0 || !cs.index && int(c) > 1<<uint(w)-1 {
			return fmt.Errorf("%w: %q", ErrAlphabet, c)
		}
	}
	return e.sized(len(s), lb, ub, ext, ub*w > 16, ub == Unbounded || ub*w > 16, func(i, j int) {
		for k := i; k < j; k++ {
			c := s[k]
			if cs.index {
				e.PutBits(uint64(cs.pos[c]), w)
			} else {
				e.PutBits(uint64(c), w)
			}
		}
	})
}

// String reads a restricted character string (see Encoder.PutString).
func (d *Decoder) String(cs *CharSet, lb, ub int, ext bool) (string, error) {
	var stack [64]byte
	out := stack[:0]
	w := cs.width
	err := d.sized(lb, ub, ext, ub*w > 16, ub == Unbounded || ub*w > 16, w, func(n int) error {
		for i := 0; i < n; i++ {
			v, err := d.Bits(w)
			if err != nil {
				return err
			}
			if cs.index {
				if v >= uint64(len(cs.chars)) {
					return fmt.Errorf("%w: index %d", ErrAlphabet, v)
				}
				v = uint64(cs.chars[v])
			}
			out = append(out, byte(v))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return d.keepText(out), nil
}

// keepText returns b as a string stored in d's text block.
func (d *Decoder) keepText(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > textBlock/8 {
		return string(b)
	}
	if cap(d.text)-len(d.text) < len(b) {
		d.text = make([]byte, 0, nextBlock(cap(d.text), len(b), textBlock))
	}
	i := len(d.text)
	d.text = append(d.text, b...)
	// The bytes below len(d.text) are never written again.
	return unsafe.String(&d.text[i], len(b))
}

// keepUnits returns a copy of u stored in d's units block, with its
// capacity cut so that appending to it cannot reach its neighbours.
func (d *Decoder) keepUnits(u []uint16) BMPString {
	if len(u) > unitsBlock/8 {
		return append(make(BMPString, 0, len(u)), u...)
	}
	if cap(d.units)-len(d.units) < len(u) {
		d.units = make([]uint16, 0, nextBlock(cap(d.units), len(u), unitsBlock))
	}
	i := len(d.units)
	d.units = append(d.units, u...)
	return BMPString(d.units[i:len(d.units):len(d.units)])
}

// PutBMPString writes a BMPString (16 bits per character) with size
// constraint lb..ub.
func (e *Encoder) PutBMPString(s BMPString, lb, ub int, ext bool) error {
	return e.sized(len(s), lb, ub, ext, ub*16 > 16, ub == Unbounded || ub*16 > 16, func(i, j int) {
		for _, c := range s[i:j] {
			e.PutBits(uint64(c), 16)
		}
	})
}

// BMPString reads a BMPString (see Encoder.PutBMPString).
func (d *Decoder) BMPString(lb, ub int, ext bool) (BMPString, error) {
	var stack [64]uint16
	out := stack[:0]
	read := false
	err := d.sized(lb, ub, ext, ub*16 > 16, ub == Unbounded || ub*16 > 16, 16, func(n int) error {
		read = true
		if d.pos&7 == 0 {
			b, err := d.AlignedBytes(2 * n)
			if err != nil {
				return err
			}
			for i := 0; i < len(b); i += 2 {
				out = append(out, uint16(b[i])<<8|uint16(b[i+1]))
			}
			return nil
		}
		for i := 0; i < n; i++ {
			v, err := d.Bits(16)
			if err != nil {
				return err
			}
			out = append(out, uint16(v))
		}
		return nil
	})
	if err != nil || !read {
		return nil, err
	}
	return d.keepUnits(out), nil
}
