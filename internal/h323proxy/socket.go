package h323proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/udpbuf"
)

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
			n, _ := s.socket(side).Drops()
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

func (m *socketMetrics) granted(socks [2]*udpbuf.Socket) {
	m.buffer.WithLabelValues(External).Set(float64(socks[0].Granted))
	m.buffer.WithLabelValues(Internal).Set(float64(socks[1].Granted))
}

// socket returns the tuning of the external (0) or internal (1) RAS
// socket; nil before Serve.
func (s *Server) socket(side int) *udpbuf.Socket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sock[side]
}
