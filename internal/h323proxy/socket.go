package h323proxy

import (
	"net"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

// rasSocket is what Serve learnt when it tuned one RAS socket: the receive
// buffer the kernel granted, and the handle its drop counter is read by.
type rasSocket struct {
	// granted is SO_RCVBUF as read back (the kernel doubles the request
	// for its bookkeeping and caps it at net.core.rmem_max unless
	// SO_RCVBUFFORCE passed); 0 when unknown.
	granted int
	raw     syscall.RawConn // nil: not a UDP socket
}

// tuneRAS sizes c's receive buffer to size bytes (SO_RCVBUFFORCE, which
// passes net.core.rmem_max with CAP_NET_ADMIN, else SO_RCVBUF; size -1
// leaves the kernel's default). A socket that is not a *net.UDPConn is
// left as it is.
func tuneRAS(c net.PacketConn, size int) *rasSocket {
	rs := &rasSocket{}
	u, ok := c.(*net.UDPConn)
	if !ok {
		return rs
	}
	raw, err := u.SyscallConn()
	if err != nil {
		return rs
	}
	rs.raw = raw
	raw.Control(func(fd uintptr) { rs.granted = setReceiveBuffer(fd, size) })
	return rs
}

// drops returns the datagrams the kernel dropped at the socket (a full
// receive buffer) since it was opened; false when the kernel does not
// tell or the socket is closed.
func (rs *rasSocket) drops() (uint64, bool) {
	if rs == nil || rs.raw == nil {
		return 0, false
	}
	var n uint64
	var ok bool
	if rs.raw.Control(func(fd uintptr) { n, ok = socketDrops(fd) }) != nil {
		return 0, false
	}
	return n, ok
}

// socketMetrics export the RAS sockets' tuning and kernel drops.
type socketMetrics struct {
	buffer *prometheus.GaugeVec
}

// newSocketMetrics registers the RAS socket metrics; the drop counters
// read the kernel's count at each scrape (sk_drops, SO_MEMINFO), through
// the sockets s is serving.
func newSocketMetrics(reg prometheus.Registerer, s *Server) *socketMetrics {
	m := &socketMetrics{
		buffer: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portico_h323_ras_receive_buffer_bytes",
			Help: "Receive buffer the kernel granted each RAS socket (SO_RCVBUF as read back), by interface."}, []string{"interface"}),
	}
	drops := func(side int) func() float64 {
		return func() float64 {
			n, _ := s.socket(side).drops()
			return float64(n)
		}
	}
	(&metrics{}).register(reg, m.buffer,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_h323_ras_kernel_drops_total",
			Help:        "RAS datagrams the kernel dropped because the socket's receive buffer was full (SO_MEMINFO), external socket.",
			ConstLabels: prometheus.Labels{"interface": External}}, drops(0)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_h323_ras_kernel_drops_total",
			Help:        "RAS datagrams the kernel dropped because the socket's receive buffer was full (SO_MEMINFO), internal socket.",
			ConstLabels: prometheus.Labels{"interface": Internal}}, drops(1)))
	return m
}

func (m *socketMetrics) granted(socks [2]*rasSocket) {
	m.buffer.WithLabelValues(External).Set(float64(socks[0].granted))
	m.buffer.WithLabelValues(Internal).Set(float64(socks[1].granted))
}

// socket returns the tuning of the external (0) or internal (1) RAS
// socket; nil before Serve.
func (s *Server) socket(side int) *rasSocket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sock[side]
}
