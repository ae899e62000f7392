package connlimit

import (
	"os"
	"runtime"
	"strconv"
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
			for n <= tc.limit && r.Allow(0, -1) {
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
	if r.Allow(0, -1) {
		t.Error("the default share (200 free) was not kept")
	}
	if !r.Allow(100, -1) {
		t.Error("a listener with a share of 100 was refused with 150 free")
	}
}

func TestReserveSharesScaleWithSmallLimit(t *testing.T) {
	// Limit 256 with a default share of 256: the default keeps 64 free, a
	// half share 32.
	r := NewReserve(256)
	r.count = func([]byte) (int, int, error) { return 256 - 50, 256, nil }
	if r.Allow(0, -1) {
		t.Error("the default share admitted with 50 of 256 free")
	}
	if !r.Allow(128, -1) {
		t.Error("a half share was refused with 50 of 256 free")
	}
}

func TestReserveDescriptorNumberBoundsCount(t *testing.T) {
	// The last count saw 100 of 1000 open; a descriptor numbered 900 since
	// means at least 901 are open now.
	r := NewReserve(200)
	r.count = func([]byte) (int, int, error) { return 100, 1000, nil }
	if !r.Allow(0, 100) {
		t.Fatal("refused with 100 of 1000 open")
	}
	if r.Allow(0, 900) {
		t.Error("admitted descriptor 900 of 1000 with a share of 200")
	}
}

func TestReserveUnsupportedAdmits(t *testing.T) {
	r := NewReserve(10)
	r.count = func([]byte) (int, int, error) { return 0, 0, errUnsupported }
	for range 3 {
		if !r.Allow(0, -1) {
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

// BenchmarkCountDescriptors measures one count of /proc/self/fd with n
// extra descriptors open: the cost Reserve pays at most every 100 ms.
func BenchmarkCountDescriptors(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("counts /proc/self/fd")
	}
	for _, n := range []int{100, 1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var fs []*os.File
			defer func() {
				for _, f := range fs {
					f.Close()
				}
			}()
			for range n {
				f, err := os.Open(os.DevNull)
				if err != nil {
					b.Skipf("open %d files: %v", n, err)
				}
				fs = append(fs, f)
			}
			buf := make([]byte, 16<<10)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := countDescriptors(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReserveAllow measures the per-accept check between counts.
func BenchmarkReserveAllow(b *testing.B) {
	r := NewReserve(256)
	r.count = func([]byte) (int, int, error) { return 100, 1 << 20, nil }
	b.ReportAllocs()
	for b.Loop() {
		r.Allow(0, 100)
	}
}
