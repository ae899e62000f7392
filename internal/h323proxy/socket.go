package h323proxy

import (
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// rasSocket is what Serve learnt when it tuned one RAS socket: the receive
// buffer the kernel granted and whether it reports its drops.
type rasSocket struct {
	// granted is SO_RCVBUF as read back (the kernel doubles the request
	// for its bookkeeping and caps it at net.core.rmem_max unless
	// SO_RCVBUFFORCE passed); 0 when unknown.
	granted int
	// ovfl is set when SO_RXQ_OVFL is on: each datagram read carries the
	// socket's cumulative drop count once it is above zero.
	ovfl bool
	// drops is the last drop count the kernel reported.
	drops atomic.Uint64
}

// tuneRAS sizes c's receive buffer to size bytes (SO_RCVBUFFORCE, which
// passes net.core.rmem_max with CAP_NET_ADMIN, else SO_RCVBUF; size -1
// leaves the kernel's default) and turns on the kernel's drop counter. A
// socket that is not a *net.UDPConn is left as it is.
func tuneRAS(c net.PacketConn, size int) *rasSocket {
	rs := &rasSocket{}
	u, ok := c.(*net.UDPConn)
	if !ok {
		return rs
	}
	rc, err := u.SyscallConn()
	if err != nil {
		return rs
	}
	rc.Control(func(fd uintptr) { rs.granted, rs.ovfl = setSockopts(fd, size) })
	return rs
}

// seen records a drop count reported with a datagram and returns how many
// drops are new since the last report.
func (rs *rasSocket) seen(n uint32) uint64 {
	for {
		old := rs.drops.Load()
		if uint64(n) <= old {
			return 0
		}
		if rs.drops.CompareAndSwap(old, uint64(n)) {
			return uint64(n) - old
		}
	}
}

// socketMetrics export the RAS sockets' tuning and kernel drops.
type socketMetrics struct {
	buffer *prometheus.GaugeVec
	drops  *prometheus.CounterVec
}

func newSocketMetrics(reg prometheus.Registerer) *socketMetrics {
	m := &socketMetrics{
		buffer: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portico_h323_ras_receive_buffer_bytes",
			Help: "Receive buffer the kernel granted each RAS socket (SO_RCVBUF as read back), by interface."}, []string{"interface"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_h323_ras_kernel_drops_total",
			Help: "RAS datagrams the kernel dropped because the socket's receive buffer was full (SO_RXQ_OVFL), by interface."}, []string{"interface"}),
	}
	(&metrics{}).register(reg, m.buffer, m.drops)
	return m
}

func (m *socketMetrics) granted(socks [2]*rasSocket) {
	m.buffer.WithLabelValues(External).Set(float64(socks[0].granted))
	m.buffer.WithLabelValues(Internal).Set(float64(socks[1].granted))
}

func (m *socketMetrics) dropped(side string, n uint64) {
	m.drops.WithLabelValues(side).Add(float64(n))
}
