package h245proxy

import (
	"bytes"
	"testing"
)

// TestFrameReaderRelease reads one of two buffered frames, releases the
// reader and checks that the next reader, which may get its buffer, reads
// its own stream only.
func TestFrameReaderRelease(t *testing.T) {
	a := NewFrameReader(bytes.NewReader(append(AppendFrame(nil, []byte("one")), AppendFrame(nil, []byte("two"))...)), 0)
	if p, err := a.Next(); err != nil || string(p) != "one" {
		t.Fatalf("first reader: %q, %v", p, err)
	}
	a.Release()
	a.Release() // twice: nothing
	for i := 0; i < 10; i++ {
		b := NewFrameReader(bytes.NewReader(AppendFrame(nil, []byte("three"))), 0)
		if p, err := b.Next(); err != nil || string(p) != "three" {
			t.Fatalf("reader %d after a release: %q, %v", i, p, err)
		}
		if p, err := b.Next(); err == nil {
			t.Fatalf("reader %d read %q past its stream", i, p)
		}
		b.Release()
	}
}
