package media

import (
	"testing"
)

// TestPortOrderUnpredictable takes every pair of a pool: the ports must be
// a permutation of the range that is not handed out in order, and most
// successive allocations must not be neighbours (relay ports that follow
// each other are easy to guess for someone injecting media).
func TestPortOrderUnpredictable(t *testing.T) {
	const lo, hi = 20000, 20399 // 200 pairs
	for _, tc := range []struct {
		name string
		// fail makes try refuse these ports (held by another process).
		fail map[int]bool
	}{
		{"all free", nil},
		{"some held elsewhere", map[int]bool{20000: true, 20100: true, 20398: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPortPool(lo, hi)
			seen := map[int]bool{}
			var order []int
			for {
				port, err := p.take(func(port int) error {
					if tc.fail[port] {
						return ErrNoPorts
					}
					return nil
				})
				if err != nil {
					break
				}
				if port < lo || port > hi-1 || port%2 != 0 || seen[port] {
					t.Fatalf("take returned %d (range %d-%d, taken before: %v)", port, lo, hi, seen[port])
				}
				seen[port] = true
				order = append(order, port)
			}
			if want := 200 - len(tc.fail); len(order) != want {
				t.Fatalf("took %d pairs, want %d", len(order), want)
			}
			adjacent := 0
			for i := 1; i < len(order); i++ {
				if d := order[i] - order[i-1]; d == 2 || d == -2 {
					adjacent++
				}
			}
			// A random order over 200 pairs has about 2 neighbouring steps.
			if adjacent > len(order)/4 {
				t.Fatalf("%d of %d successive allocations were neighbours: %v", adjacent, len(order)-1, order[:20])
			}
			for _, port := range order {
				p.put(port)
			}
			if p.available() != 200 {
				t.Fatalf("available after putting all back = %d, want 200", p.available())
			}
			p.put(order[0]) // twice: ignored
			if p.available() != 200 {
				t.Fatalf("available after a double put = %d", p.available())
			}
		})
	}
}
