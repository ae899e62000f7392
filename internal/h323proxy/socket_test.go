//go:build linux

package h323proxy

import (
	"encoding/binary"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
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
	floor := want
	if os.Geteuid() != 0 {
		b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
		if err != nil {
			t.Fatal(err)
		}
		max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		floor = min(floor, max)
	}
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
// overflows the socket; the kernel's drop count reaches
// portico_h323_ras_kernel_drops_total once the loop reads again.
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
	drops := h.s.sockStat.drops.WithLabelValues(External)
	// A datagram queued after the drops carries the count; the loop is
	// bounded, the wait only stops a hung test.
	for i := 0; i < 100 && testutil.ToFloat64(drops) == 0; i++ {
		h.ep.send(h.ext, grq)
		time.Sleep(100 * time.Millisecond)
	}
	if got := testutil.ToFloat64(drops); got == 0 {
		t.Fatal("no kernel drops counted after overflowing the receive buffer")
	}
}

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func TestRxqOverflow(t *testing.T) {
	ovfl := cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, binary.NativeEndian.AppendUint32(nil, 42))
	other := cmsg(unix.SOL_IP, unix.IP_TTL, []byte{64, 0, 0, 0})
	for _, tc := range []struct {
		name string
		b    []byte
		n    uint32
		ok   bool
	}{
		{"alone", ovfl, 42, true},
		{"after another", append(append([]byte(nil), other...), ovfl...), 42, true},
		{"none", other, 0, false},
		{"empty", nil, 0, false},
		{"truncated", ovfl[:len(ovfl)-6], 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n, ok := rxqOverflow(tc.b); n != tc.n || ok != tc.ok {
				t.Errorf("rxqOverflow = %d, %v; want %d, %v", n, ok, tc.n, tc.ok)
			}
		})
	}
}

// FuzzRxqOverflow: any control-message bytes are read without a panic.
func FuzzRxqOverflow(f *testing.F) {
	f.Add(cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, []byte{1, 0, 0, 0}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 40, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) { rxqOverflow(b) })
}
