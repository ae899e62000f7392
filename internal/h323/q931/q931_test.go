package q931

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// setup is a hand-built Setup: call reference 0x002a, bearer capability,
// display "Portico", called party number 5295672 (unknown/E.164), an unknown
// IE 0x7f... kept raw, sending complete, and a user-user IE with a
// two-octet length.
var setup = []byte{
	0x08, 0x02, 0x00, 0x2a, 0x05,
	0xa1,
	0x04, 0x03, 0x88, 0x90, 0xa5,
	0x28, 0x07, 'P', 'o', 'r', 't', 'i', 'c', 'o',
	0x70, 0x08, 0x81, '5', '2', '9', '5', '6', '7', '2',
	0x6c, 0x06, 0x01, 0x83, '1', '0', '0', '1',
	0x7d, 0x02, 0x91, 0x81,
	0x7e, 0x00, 0x03, 0x05, 0x20, 0x00,
}

func TestParseSetup(t *testing.T) {
	m, err := Parse(setup)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != Setup || m.CallRef != 42 || m.FromDestination || m.CallRefLen != 2 {
		t.Fatalf("header: %+v", m)
	}
	if d, _ := m.Display(); d != "Portico" {
		t.Fatalf("display %q", d)
	}
	n, err := m.Number(IECalledPartyNumber)
	if err != nil || n.Digits != "5295672" || n.Plan != 1 || n.HasScreening {
		t.Fatalf("called: %+v %v", n, err)
	}
	c, err := m.Number(IECallingPartyNumber)
	if err != nil || c.Digits != "1001" || !c.HasScreening || c.Screening != 3 {
		t.Fatalf("calling: %+v %v", c, err)
	}
	if bc, err := m.BearerCapability(); err != nil || bc != 8 {
		t.Fatalf("bearer %d %v", bc, err)
	}
	uu, err := m.UserUser()
	if err != nil || !bytes.Equal(uu, []byte{0x20, 0x00}) {
		t.Fatalf("user-user % x %v", uu, err)
	}
	out, err := m.Append(nil)
	if err != nil || !bytes.Equal(out, setup) {
		t.Fatalf("round trip: %v\n got % x\nwant % x", err, out, setup)
	}
}

func TestBuild(t *testing.T) {
	m := &Message{CallRefLen: 2, CallRef: 0x1234, FromDestination: true, Type: ReleaseComplete}
	m.SetUserUser([]byte{1, 2})
	m.SetCause(Cause{Location: 0, Value: 16})
	m.SetDisplay("x")
	m.SetProgressIndicator(Progress{Description: 8})
	out, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x08, 0x02, 0x92, 0x34, 0x5a, 0x08, 0x02, 0x80, 0x90, 0x1e, 0x02, 0x80, 0x88, 0x28, 0x01, 'x', 0x7e, 0x00, 0x03, 0x05, 1, 2}
	if !bytes.Equal(out, want) {
		t.Fatalf("got % x\nwant % x", out, want)
	}
	p, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := p.Cause(); err != nil || c.Value != 16 {
		t.Fatalf("cause %+v %v", c, err)
	}
	if pi, err := p.ProgressIndicator(); err != nil || pi.Description != 8 {
		t.Fatalf("progress %+v %v", pi, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"discriminator", []byte{0x09, 0x02, 0, 1, 5}, ErrFormat},
		{"call ref length", []byte{0x08, 0x0f, 0, 1, 5}, ErrFormat},
		{"ie past end", []byte{0x08, 0x02, 0, 1, 5, 0x28, 0x09, 'a'}, ErrShort},
		{"uu length past end", []byte{0x08, 0x02, 0, 1, 5, 0x7e, 0x01, 0x00, 5}, ErrShort},
		{"uu length cut", []byte{0x08, 0x02, 0, 1, 5, 0x7e, 0x01}, ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTPKTReader(t *testing.T) {
	var stream []byte
	stream, _ = AppendTPKT(stream, setup)
	stream = append(stream, 3, 0, 0, 4) // keep-alive
	stream, _ = AppendTPKT(stream, []byte{0x08, 0x02, 0x80, 0x2a, 0x07})
	// one byte per read: every split position
	r := NewTPKTReader(iotest.OneByteReader(bytes.NewReader(stream)))
	p1, err := r.Next()
	if err != nil || !bytes.Equal(p1, setup) {
		t.Fatalf("first: %v", err)
	}
	p2, err := r.Next()
	if err != nil || len(p2) != 5 || r.KeepAlives != 1 {
		t.Fatalf("second: % x %v keep-alives %d", p2, err, r.KeepAlives)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	r = NewTPKTReader(bytes.NewReader(stream[:10]))
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut stream: %v", err)
	}
	if _, _, err := SplitTPKT(stream[:10]); !errors.Is(err, ErrShort) {
		t.Fatalf("split short: %v", err)
	}
	if _, _, err := SplitTPKT([]byte{4, 0, 0, 8, 1, 2, 3, 4}); !errors.Is(err, ErrTPKT) {
		t.Fatalf("split version: %v", err)
	}
	p, rest, err := SplitTPKT(stream)
	if err != nil || !bytes.Equal(p, setup) || len(rest) != 4+9 {
		t.Fatalf("split: %v rest %d", err, len(rest))
	}
}

func FuzzParse(f *testing.F) {
	f.Add(setup)
	f.Add([]byte{0x08, 0x02, 0x92, 0x34, 0x5a, 0x08, 0x02, 0x80, 0x90})
	f.Add([]byte{0x08, 0x00, 0x7d})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		out, err := m.Append(nil)
		if err != nil {
			t.Fatalf("append after parse: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip differs\n got % x\nwant % x", out, b)
		}
		m.UserUser()
		m.Cause()
		m.ProgressIndicator()
		m.Number(IECalledPartyNumber)
		m.Number(IECallingPartyNumber)
		m.BearerCapability()
	})
}

func BenchmarkParseAppend(b *testing.B) {
	b.ReportAllocs()
	var m Message
	buf := make([]byte, 0, 128)
	for i := 0; i < b.N; i++ {
		if err := m.Parse(setup); err != nil {
			b.Fatal(err)
		}
		buf, _ = m.Append(buf[:0])
	}
}

// TestAbsentIEs: asking a message for the party numbers and the cause it
// does not carry says ErrNoIE and allocates nothing (a proxy asks every
// message it forwards).
func TestAbsentIEs(t *testing.T) {
	m := &Message{CallRefLen: 2, CallRef: 7, Type: Connect}
	if _, err := m.Number(IECalledPartyNumber); !errors.Is(err, ErrNoIE) {
		t.Fatalf("called party number: %v", err)
	}
	if _, err := m.Number(IECallingPartyNumber); !errors.Is(err, ErrNoIE) {
		t.Fatalf("calling party number: %v", err)
	}
	if _, err := m.Cause(); !errors.Is(err, ErrNoIE) {
		t.Fatalf("cause: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() {
		m.Number(IECalledPartyNumber)
		m.Number(IECallingPartyNumber)
		m.Cause()
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
