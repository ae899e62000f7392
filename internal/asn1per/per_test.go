package asn1per

import (
	"bytes"
	"errors"
	"testing"
)

func TestEncodeVectors(t *testing.T) {
	digits := NewCharSet(IA5, "0123456789#*,")
	tests := []struct {
		name string
		enc  func(e *Encoder) error
		want []byte
	}{
		{"constrained 3 bits", func(e *Encoder) error { return e.PutConstrained(3, 0, 7) }, []byte{0x60}},
		{"constrained 2 octets", func(e *Encoder) error { return e.PutConstrained(300, 0, 65535) }, []byte{0x01, 0x2c}},
		{"constrained octet after bit", func(e *Encoder) error { e.PutBool(true); return e.PutConstrained(5, 0, 255) }, []byte{0x80, 0x05}},
		{"constrained indefinite", func(e *Encoder) error { return e.PutConstrained(1<<20, 0, 4294967295) }, []byte{0x80, 0x10, 0, 0}},
		{"constrained lb offset", func(e *Encoder) error { return e.PutConstrained(1, 1, 65535) }, []byte{0, 0}},
		{"semi-constrained", func(e *Encoder) error { return e.PutInt(256, true, 0, false, 0, false) }, []byte{0x02, 0x01, 0x00}},
		{"unconstrained -1", func(e *Encoder) error { return e.PutInt(-1, false, 0, false, 0, false) }, []byte{0x01, 0xff}},
		{"unconstrained 128", func(e *Encoder) error { e.PutUnconstrained(128); return nil }, []byte{0x02, 0x00, 0x80}},
		{"extensible int in root", func(e *Encoder) error { return e.PutInt(18, true, 0, true, 16383, true) }, []byte{0x00, 0x00, 0x12}},
		{"extensible int outside", func(e *Encoder) error { return e.PutInt(20000, true, 0, true, 16383, true) }, []byte{0x80, 0x02, 0x4e, 0x20}},
		{"normally small", func(e *Encoder) error { e.PutNormallySmall(5); return nil }, []byte{0x0a}},
		{"normally small big", func(e *Encoder) error { e.PutNormallySmall(64); return nil }, []byte{0x80, 0x01, 0x40}},
		{"length short", func(e *Encoder) error { return e.PutLength(3, 0, Unbounded, false) }, []byte{0x03}},
		{"length long", func(e *Encoder) error { return e.PutLength(200, 0, Unbounded, false) }, []byte{0x80, 0xc8}},
		{"length constrained", func(e *Encoder) error { return e.PutLength(2, 1, 256, false) }, []byte{0x01}},
		{"digits index", func(e *Encoder) error { return e.PutString("12", digits, 1, 128, false) }, []byte{0x02, 0x45}},
		{"bmp", func(e *Encoder) error { return e.PutBMPString(BMP("ab"), 1, 256, false) }, []byte{0x01, 0, 0x61, 0, 0x62}},
		{"printable by value", func(e *Encoder) error { return e.PutString("A", NewCharSet(Printable, ""), 0, Unbounded, false) }, []byte{0x01, 0x41}},
		{"numeric index", func(e *Encoder) error { return e.PutString("09", NewCharSet(Numeric, ""), 1, 16, false) }, []byte{0x10, 0x1a}},
		{"oid", func(e *Encoder) error { return e.PutObjectIdentifier(OID("0.0.8.2250.0.4")) }, []byte{0x06, 0x00, 0x08, 0x91, 0x4a, 0x00, 0x04}},
		{"choice root", func(e *Encoder) error { return e.PutChoice(1, 4, true) }, []byte{0x20}},
		{"choice extension", func(e *Encoder) error { return e.PutChoice(5, 4, true) }, []byte{0x81}},
		{"enum no ext", func(e *Encoder) error { return e.PutEnum(2, 3, false) }, []byte{0x80}},
		{"bitmap len", func(e *Encoder) error { e.PutExtBitmapLen(3); return nil }, []byte{0x04}},
		{"octet fixed 2 unaligned", func(e *Encoder) error { e.PutBool(true); return e.PutOctetString([]byte{0xff, 0x00}, 2, 2, false) }, []byte{0xff, 0x80, 0x00}},
		{"octet fixed 4 aligned", func(e *Encoder) error { e.PutBool(true); return e.PutOctetString([]byte{1, 2, 3, 4}, 4, 4, false) }, []byte{0x80, 1, 2, 3, 4}},
		{"bit string fixed", func(e *Encoder) error { return e.PutBitString(BitString{Bytes: []byte{0xa0}, Len: 3}, 3, 3, false) }, []byte{0xa0}},
		{"open type", func(e *Encoder) error { e.PutOpenType([]byte{0}); return nil }, []byte{0x01, 0x00}},
		{"empty open type", func(e *Encoder) error { e.PutOpenType(nil); return nil }, []byte{0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Encoder
			if err := tt.enc(&e); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.Bytes(), tt.want) {
				t.Fatalf("got % x, want % x", e.Bytes(), tt.want)
			}
		})
	}
}

func TestDecodeVectors(t *testing.T) {
	d := NewDecoder([]byte{0x80, 0x10, 0, 0})
	if v, err := d.Constrained(0, 4294967295); err != nil || v != 1<<20 {
		t.Fatalf("constrained: %d %v", v, err)
	}
	d = NewDecoder([]byte{0x02, 0x45})
	if s, err := d.String(NewCharSet(IA5, "0123456789#*,"), 1, 128, false); err != nil || s != "12" {
		t.Fatalf("digits: %q %v", s, err)
	}
	d = NewDecoder([]byte{0x80, 0x02, 0x4e, 0x20})
	if v, err := d.Int(true, 0, true, 16383, true); err != nil || v != 20000 {
		t.Fatalf("ext int: %d %v", v, err)
	}
	d = NewDecoder([]byte{0x01, 0xff})
	if v, err := d.Unconstrained(); err != nil || v != -1 {
		t.Fatalf("unconstrained: %d %v", v, err)
	}
	d = NewDecoder([]byte{0x81})
	if v, err := d.Choice(4, true); err != nil || v != 5 {
		t.Fatalf("choice: %d %v", v, err)
	}
	d = NewDecoder([]byte{0x06, 0x00, 0x08, 0x91, 0x4a, 0x00, 0x04})
	if o, err := d.ObjectIdentifier(); err != nil || o.String() != "0.0.8.2250.0.4" {
		t.Fatalf("oid: %v %v", o, err)
	}
}

func TestFragmentation(t *testing.T) {
	for _, n := range []int{0, 127, 128, 16383, 16384, 16389, 65536, 70000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		var e Encoder
		if err := e.PutOctetString(b, 0, Unbounded, false); err != nil {
			t.Fatal(err)
		}
		if n == 16389 && (e.Bytes()[0] != 0xc1 || e.Bytes()[16385] != 5) {
			t.Fatalf("fragment header % x / %x", e.Bytes()[:1], e.Bytes()[16385])
		}
		got, err := NewDecoder(e.Bytes()).OctetString(0, Unbounded, false)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("n=%d: err %v, equal %v", n, err, bytes.Equal(got, b))
		}
		e.Reset()
		e.PutOpenType(b)
		got, err = NewDecoder(e.Bytes()).OpenType()
		if n > 0 && (err != nil || !bytes.Equal(got, b)) {
			t.Fatalf("open n=%d: err %v", n, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		dec  func(d *Decoder) error
		want error
	}{
		{"truncated octets", []byte{0x05, 1, 2}, func(d *Decoder) error { _, err := d.OctetString(0, Unbounded, false); return err }, ErrTruncated},
		{"length beyond input", []byte{0x7f}, func(d *Decoder) error { _, err := d.Length(0, Unbounded, false, 8); return err }, ErrTruncated},
		{"empty", nil, func(d *Decoder) error { _, err := d.Bool(); return err }, ErrTruncated},
		{"range overflow", []byte{0xff, 0xff}, func(d *Decoder) error { _, err := d.Constrained(0, 1000); return err }, ErrConstraint},
		{"bad index char", []byte{0x01, 0xf0}, func(d *Decoder) error {
			_, err := d.String(NewCharSet(IA5, "0123456789#*,"), 1, 128, false)
			return err
		}, ErrAlphabet},
		{"huge int", []byte{0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9}, func(d *Decoder) error { _, err := d.Unconstrained(); return err }, ErrUnsupported},
		// A length octet read from cut-off input promises more octets than
		// are left: that is truncation, not an unsupported integer size.
		{"truncated unconstrained int", []byte{0x20}, func(d *Decoder) error { _, err := d.Unconstrained(); return err }, ErrTruncated},
		{"truncated semi-constrained int", []byte{0x20, 1}, func(d *Decoder) error { _, err := d.SemiConstrained(); return err }, ErrTruncated},
		{"truncated short int", []byte{0x02, 1}, func(d *Decoder) error { _, err := d.Unconstrained(); return err }, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Wrap(tt.dec(NewDecoder(tt.in)), "field")
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(Wrap(err, "outer"), &fe) || len(fe.Path) != 2 || fe.Path[0] != "outer" {
				t.Fatalf("path not kept: %v", err)
			}
		})
	}
}

// FuzzDecoder drives every decoder primitive from the input; it must never
// panic and anything it decodes must re-encode to bits that decode equally.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0x80, 0x10, 0, 0, 1, 2})
	f.Add([]byte{0xc1, 0xff, 0x02, 0x45, 0x06, 0x00, 0x08})
	f.Add([]byte{0x7f, 0x80, 0xc8, 0x01, 0x00})
	digits := NewCharSet(IA5, "0123456789#*,")
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(in)
		for d.Remaining() > 0 {
			op, err := d.Bits(4)
			if err != nil {
				return
			}
			switch op {
			case 0:
				_, err = d.Constrained(0, 4294967295)
			case 1:
				_, err = d.Unconstrained()
			case 2:
				_, err = d.SemiConstrained()
			case 3:
				_, err = d.NormallySmall()
			case 4:
				_, err = d.OctetString(0, Unbounded, true)
			case 5:
				_, err = d.String(digits, 1, 128, true)
			case 6:
				_, err = d.BMPString(1, 256, false)
			case 7:
				_, err = d.BitString(0, 2048, false)
			case 8:
				_, err = d.OpenType()
			case 9:
				_, err = d.ObjectIdentifier()
			case 10:
				_, err = d.Choice(20, true)
			case 11:
				_, err = d.ExtBitmap(nil)
			case 12:
				_, err = d.Length(1, 65535, false, 1)
			default:
				s, err2 := d.String(NewCharSet(Printable, ""), 0, Unbounded, false)
				if err2 == nil {
					var e Encoder
					if err := e.PutString(s, NewCharSet(Printable, ""), 0, Unbounded, false); err == nil {
						if s2, err := NewDecoder(e.Bytes()).String(NewCharSet(Printable, ""), 0, Unbounded, false); err != nil || s2 != s {
							t.Fatalf("string round trip %q -> %q %v", s, s2, err)
						}
					}
				}
				err = err2
			}
			if err != nil {
				return
			}
		}
	})
}

func BenchmarkConstrained(b *testing.B) {
	b.ReportAllocs()
	var e Encoder
	buf := []byte{0x80, 0x10, 0, 0}
	for i := 0; i < b.N; i++ {
		e.Reset()
		_ = e.PutConstrained(int64(i&0xffff), 0, 4294967295)
		d := Decoder{buf: buf}
		_, _ = d.Constrained(0, 4294967295)
	}
}

func BenchmarkString(b *testing.B) {
	b.ReportAllocs()
	digits := NewCharSet(IA5, "0123456789#*,")
	var e Encoder
	for i := 0; i < b.N; i++ {
		e.Reset()
		_ = e.PutString("5295672", digits, 1, 128, false)
		d := Decoder{buf: e.Bytes()}
		_, _ = d.String(digits, 1, 128, false)
	}
}
