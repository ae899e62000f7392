package bencode

import (
	"errors"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    any
		wantErr error
	}{
		{"string", "4:spam", "spam", nil},
		{"empty string", "0:", "", nil},
		{"int", "i42e", int64(42), nil},
		{"negative", "i-3e", int64(-3), nil},
		{"zero", "i0e", int64(0), nil},
		{"list", "l4:spami7ee", []any{"spam", int64(7)}, nil},
		{"dict", "d7:command4:ping3:cow3:mooe", map[string]any{"command": "ping", "cow": "moo"}, nil},
		{"nested", "d1:lld1:ai1eeee", map[string]any{"l": []any{map[string]any{"a": int64(1)}}}, nil},
		{"leading zero int", "i03e", nil, ErrSyntax},
		{"minus zero", "i-0e", nil, ErrSyntax},
		{"empty int", "ie", nil, ErrSyntax},
		{"string too long", "10:abc", nil, ErrSyntax},
		{"unterminated list", "l4:spam", nil, ErrSyntax},
		{"non-string key", "di1ei2ee", nil, ErrSyntax},
		{"trailing", "i1ei2e", nil, ErrTrailing},
		{"garbage", "x", nil, ErrSyntax},
		{"empty", "", nil, ErrSyntax},
		{"huge length", "99999999999:a", nil, ErrSyntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestDepth(t *testing.T) {
	deep := make([]byte, 0, 2*(MaxDepth+10))
	for i := 0; i < MaxDepth+5; i++ {
		deep = append(deep, 'l')
	}
	for i := 0; i < MaxDepth+5; i++ {
		deep = append(deep, 'e')
	}
	if _, err := Parse(deep); !errors.Is(err, ErrDepth) {
		t.Fatalf("err = %v, want ErrDepth", err)
	}
}

func TestAppendSortsKeys(t *testing.T) {
	got, err := Append(nil, map[string]any{"sdp": "v=0", "result": "ok", "flags": []string{"a"}, "n": 3})
	if err != nil {
		t.Fatal(err)
	}
	want := "d5:flagsl1:ae1:ni3e6:result2:ok3:sdp3:v=0e"
	if string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if _, err := Append(nil, 1.5); err == nil {
		t.Fatal("float encoded")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"d7:command4:pinge", "l4:spami7ee", "i-3e", "d3:sdp10:v=0\r\no=- 1e", "llllee", "10:abc"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Parse(b)
		if err != nil {
			return
		}
		out, err := Append(nil, v)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		v2, err := Parse(out)
		if err != nil || !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip: %v, %#v != %#v", err, v, v2)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	msg := []byte("d7:command5:offer7:call-id8:abcdefgh8:from-tag4:tag13:sdp60:v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\ne")
	b.ReportAllocs()
	for b.Loop() {
		Parse(msg)
	}
}
