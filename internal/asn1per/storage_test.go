package asn1per

import (
	"strings"
	"testing"
)

// TestStringStorage checks that strings decoded into the Decoder's shared
// storage stay intact while the Decoder goes on decoding other messages,
// and that appending to a decoded BMPString does not reach its neighbour.
func TestStringStorage(t *testing.T) {
	ia5 := NewCharSet(IA5, "")
	long := strings.Repeat("x", textBlock) // gets storage of its own
	var d Decoder
	var strs []string
	var bmps []BMPString
	var want []string
	for i := 0; i < 3*textBlock/8; i++ {
		s := string(rune('a'+i%26)) + strings.Repeat("0123456789", i%5)
		if i%7 == 3 {
			s = long
		}
		e := NewEncoder(nil)
		if err := e.PutString(s, ia5, 0, Unbounded, false); err != nil {
			t.Fatal(err)
		}
		if err := e.PutBMPString(BMP(s), 1, Unbounded, false); err != nil {
			t.Fatal(err)
		}
		d.Init(e.Complete())
		got, err := d.String(ia5, 0, Unbounded, false)
		if err != nil || got != s {
			t.Fatalf("string %d = %q, %v; want %q", i, got, err, s)
		}
		b, err := d.BMPString(1, Unbounded, false)
		if err != nil || b.String() != s {
			t.Fatalf("BMPString %d = %q, %v; want %q", i, b.String(), err, s)
		}
		strs, bmps, want = append(strs, got), append(bmps, b), append(want, s)
		if i > 0 {
			_ = append(bmps[i-1], 'Z', 'Z', 'Z') // must copy, not overwrite b
		}
	}
	for i := range want {
		if strs[i] != want[i] || bmps[i].String() != want[i] {
			t.Errorf("value %d changed: %q / %q, want %q", i, strs[i], bmps[i].String(), want[i])
		}
	}
}

// TestPushPop reads an open type's contents and goes on after it.
func TestPushPop(t *testing.T) {
	e := NewEncoder(nil)
	inner := NewEncoder(nil)
	inner.PutBool(true)
	if err := inner.PutConstrained(9, 0, 15); err != nil {
		t.Fatal(err)
	}
	e.PutBool(true)
	e.PutOpenType(inner.Complete())
	if err := e.PutConstrained(5, 0, 7); err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(e.Complete())
	if b, err := d.Bool(); !b || err != nil {
		t.Fatalf("bool %v %v", b, err)
	}
	raw, err := d.OpenType()
	if err != nil {
		t.Fatal(err)
	}
	f := d.Push(raw)
	if b, err := d.Bool(); !b || err != nil {
		t.Fatalf("inner bool %v %v", b, err)
	}
	if v, err := d.Constrained(0, 15); v != 9 || err != nil {
		t.Fatalf("inner value %d %v", v, err)
	}
	d.Pop(f)
	if v, err := d.Constrained(0, 7); v != 5 || err != nil {
		t.Fatalf("value after the open type %d %v", v, err)
	}
}
