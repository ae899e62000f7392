package sipedge

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/udpbuf"
)

// udpSockets are the UDP listeners' kernel sockets as Serve tuned them
// (Config.UDPReceiveBuffer), by interface, for their metrics.
type udpSockets struct {
	buffer *prometheus.GaugeVec
	// socks are under Server.sockMu.
	socks map[string][]*udpbuf.Socket
}

// tuneUDP sizes the receive buffer of c, a UDP listener of iface, before
// anything wraps it, and logs what the kernel granted.
func (s *Server) tuneUDP(iface string, c net.PacketConn) {
	us := udpbuf.Tune(c, s.cfg.UDPReceiveBuffer)
	s.sockMu.Lock()
	s.udp.socks[iface] = append(s.udp.socks[iface], us)
	s.sockMu.Unlock()
	s.udp.buffer.WithLabelValues(iface).Set(float64(us.Granted))
	s.log.Info("sip udp socket", "interface", iface, "addr", c.LocalAddr().String(),
		"receive_buffer_requested", s.cfg.UDPReceiveBuffer, "receive_buffer_granted", us.Granted)
}

// udpDrops is the datagrams the kernel dropped at iface's UDP listeners
// because their receive buffers were full.
func (s *Server) udpDrops(iface string) float64 {
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	var n uint64
	for _, us := range s.udp.socks[iface] {
		d, _ := us.Drops()
		n += d
	}
	return float64(n)
}

// registerUDP registers portico_sip_udp_receive_buffer_bytes and
// portico_sip_udp_kernel_drops_total (read from the kernel at each scrape).
func (s *Server) registerUDP(reg prometheus.Registerer) {
	s.udp = udpSockets{socks: map[string][]*udpbuf.Socket{},
		buffer: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portico_sip_udp_receive_buffer_bytes",
			Help: "Receive buffer the kernel granted the UDP listeners (SO_RCVBUF as read back), by interface."}, []string{"interface"})}
	if reg == nil {
		return
	}
	cs := []prometheus.Collector{s.udp.buffer}
	for _, iface := range []string{External, Internal} {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_sip_udp_kernel_drops_total",
			Help:        "Datagrams the kernel dropped at the UDP listeners because their receive buffers were full (SO_MEMINFO), by interface.",
			ConstLabels: prometheus.Labels{"interface": iface}}, func() float64 { return s.udpDrops(iface) }))
	}
	for _, c := range cs {
		_ = reg.Register(c) // a second edge on one registry keeps the first's
	}
}
