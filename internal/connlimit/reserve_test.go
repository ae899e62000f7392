package connlimit

import (
	"os"
	"runtime"
	"testing"
)

func TestReserveAllow(t *testing.T) {
	for _, tc := range []struct {
		name        string
		open, limit int
		keep        int // asked
		allowed     int // Allow calls that succeed before the first refusal
	}{
		{"room", 100, 1000, 256, 1000 - 100 - 250}, // keep cut to limit/4 = 250
		{"full", 900, 1000, 100, 0},
		{"share", 800, 1000, 100, 100},
		{"small limit", 40, 64, 256, 64 - 40 - 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReserve(tc.keep)
			counts := 0
			r.count = func([]byte) (int, int, error) { counts++; return tc.open, tc.limit, nil }
			n := 0
			for n <= tc.limit && r.Allow(0) {
				n++
			}
			if n != tc.allowed {
				t.Errorf("admitted %d, want %d", n, tc.allowed)
			}
			if counts == 0 {
				t.Error("never counted")
			}
		})
	}
}

func TestReserveShareSmallerThanDefault(t *testing.T) {
	r := NewReserve(200)
	r.count = func([]byte) (int, int, error) { return 850, 1000, nil }
	if r.Allow(0) {
		t.Error("the default share (200 free) was not kept")
	}
	if !r.Allow(100) {
		t.Error("a listener with a share of 100 was refused with 150 free")
	}
}

func TestReserveUnsupportedAdmits(t *testing.T) {
	r := NewReserve(10)
	r.count = func([]byte) (int, int, error) { return 0, 0, errUnsupported }
	for range 3 {
		if !r.Allow(0) {
			t.Fatal("refused where descriptors cannot be counted")
		}
	}
}

func TestCountDescriptors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	buf := make([]byte, 512) // small, so that the count takes several reads
	before, limit, err := countDescriptors(buf)
	if err != nil {
		t.Fatal(err)
	}
	if limit <= 0 || before <= 0 {
		t.Fatalf("open %d limit %d", before, limit)
	}
	var fs []*os.File
	for range 50 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	after, _, err := countDescriptors(buf)
	for _, f := range fs {
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if after-before != 50 {
		t.Errorf("count grew by %d after opening 50 files", after-before)
	}
}
