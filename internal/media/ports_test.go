package media

import (
	"testing"
	"time"
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

// TestPortTakeConcurrent holds one take inside try (binding sockets takes
// system calls, and the thread may be descheduled meanwhile) and checks
// that another take completes in the meantime, with another pair.
func TestPortTakeConcurrent(t *testing.T) {
	p := newPortPool(20000, 20399)
	inTry, release := make(chan int), make(chan struct{})
	first := make(chan int)
	go func() {
		port, err := p.take(func(port int) error {
			inTry <- port
			<-release
			return nil
		})
		if err != nil {
			port = -1
		}
		first <- port
	}()
	held := <-inTry
	second := make(chan int)
	go func() {
		port, err := p.take(func(int) error { return nil })
		if err != nil {
			port = -1
		}
		second <- port
	}()
	var other int
	select {
	case other = <-second:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("a take waited for another take's try")
	}
	close(release)
	if got := <-first; got != held {
		t.Fatalf("first take returned %d, tried %d", got, held)
	}
	if other == held || other < 0 {
		t.Fatalf("second take returned %d while %d was being tried", other, held)
	}
	if p.available() != 198 {
		t.Fatalf("available = %d, want 198", p.available())
	}
}
