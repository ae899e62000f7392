//go:build linux

package h323proxy

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/udpbuf"
)

// TestRASSocketBuffer: the RAS sockets get the configured receive buffer
// (SO_RCVBUFFORCE as root, else up to net.core.rmem_max), and what the
// kernel granted is exported.
func TestRASSocketBuffer(t *testing.T) {
	const want = 1 << 20
	h := newHarness(t, func(c *Config) { c.SocketBuffer = want })
	// Answered: Serve has tuned the sockets (before it starts reading).
	h.ep.send(h.ext, ras.GRQ(1, endpoint("gina", false)))
	h.ep.expect(h225.RasMessage_GatekeeperConfirm)
	floor := udpbuf.Least(want)
	for _, side := range []string{External, Internal} {
		got := testutil.ToFloat64(h.s.sockStat.buffer.WithLabelValues(side))
		// The kernel reports twice the size it accounts.
		if got < float64(floor) {
			t.Errorf("%s receive buffer %.0f, want at least %d", side, got, floor)
		}
	}
}

// TestRASKernelDropsCounted: with a tiny receive buffer and the read loop
// held (the test's write hook stops the answer to the first GRQ), a burst
// overflows the socket, and the kernel's drop count that
// portico_h323_ras_kernel_drops_total reads (SO_MEMINFO) shows it.
func TestRASKernelDropsCounted(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SocketBuffer = 4096 })
	entered, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	hook := func(side string, _ netip.AddrPort, _ []byte) {
		if side == External && once.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
	}
	h.s.writeHook.Store(&hook)
	grq := ras.GRQ(1, endpoint("frank", false))
	h.ep.send(h.ext, grq)
	select {
	case <-entered:
	case <-time.After(10 * time.Second): // only stops a hung test
		t.Fatal("the GRQ was not answered")
	}
	for i := 0; i < 500; i++ { // bounded burst, far above a 4 KiB buffer
		h.ep.send(h.ext, grq)
	}
	close(release)
	n, ok := h.s.socket(0).Drops()
	if !ok || n == 0 {
		t.Fatalf("kernel drops = %d (%v) after overflowing the receive buffer", n, ok)
	}
	// The read loop drains the rest; the count stays.
	h.ep.send(h.ext, grq)
	if m, _ := h.s.socket(0).Drops(); m < n {
		t.Errorf("drops went back from %d to %d", n, m)
	}
}
