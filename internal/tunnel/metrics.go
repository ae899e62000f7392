package tunnel

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports an end's Stats at each scrape; the counters it reads
// are the atomics the data path bumps, so nothing is looked up per packet.
type collector struct {
	stats func() Stats

	up, rtt, reconnects, bytes, flows, flowsTotal, dialRefused, bundles, bundled, bundlesIn, sendWait, cwnd, dropped, refused *prometheus.Desc
	laneUp, laneOwn, laneBundles, laneWait, laneCwnd                                                                          *prometheus.Desc
	problem, moves, servedBy                                                                                                  *prometheus.Desc
}

func newCollector(stats func() Stats) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("portico_tunnel_"+name, help, labels, nil)
	}
	return &collector{
		stats:       stats,
		up:          d("up", "1 while the tunnel connection is up."),
		rtt:         d("rtt_seconds", "Smoothed round-trip time of the tunnel connection."),
		reconnects:  d("reconnects_total", "Connections made again after the tunnel went down (client)."),
		bytes:       d("bytes_total", "Payload bytes carried, by service and direction (in: from the tunnel).", "service", "direction"),
		flows:       d("flows", "Flows open now, by service.", "service"),
		flowsTotal:  d("flows_total", "Flows opened, by service.", "service"),
		dialRefused: d("dials_refused_total", "Dials of the peer refused: destination outside the dial service's networks, by service.", "service"),
		bundles:     d("bundles_sent_total", "QUIC datagrams sent, each a bundle of flow datagrams."),
		bundled:     d("bundled_datagrams_total", "Flow datagrams sent in bundles."),
		bundlesIn:   d("bundles_received_total", "QUIC datagrams received from the peer."),
		sendWait:    d("send_wait_seconds_total", "Time the sender waited for QUIC to take a datagram (congestion window or send queue full)."),
		cwnd:        d("congestion_window_bytes", "Congestion window of the tunnel connection."),
		dropped:     d("datagrams_dropped_total", "Datagrams dropped, by reason.", "reason"),
		refused:     d("refused_total", "Peers refused: unpinned certificates (handshake) and enrollments.", "reason"),
		laneUp:      d("datagram_connection_up", "1 while a datagram connection's flows have a connection to go on.", "connection"),
		laneOwn:     d("datagram_connection_own", "1 while a datagram connection is up itself (0: its flows go on the first connection).", "connection"),
		laneBundles: d("datagram_connection_bundles_sent_total", "QUIC datagrams sent for a datagram connection's flows.", "connection"),
		laneWait:    d("datagram_connection_send_wait_seconds_total", "Time a datagram connection's sender waited for QUIC to take a datagram.", "connection"),
		laneCwnd:    d("datagram_connection_congestion_window_bytes", "Congestion window of the connection a datagram connection's flows go on.", "connection"),
		moves:       d("service_moves_total", "Changes of the clients serving a service (server): a client came, went or outranked another.", "service"),
		servedBy:    d("service_clients", "Clients serving a service now (server).", "service"),
		problem:     d("reenroll_required", "1 while the server presents a certificate this client has not pinned (it rotated while the client was away): enroll again."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.rtt, c.reconnects, c.bytes, c.flows, c.flowsTotal, c.dialRefused, c.bundles, c.bundled, c.bundlesIn, c.sendWait, c.cwnd, c.dropped, c.refused,
		c.laneUp, c.laneOwn, c.laneBundles, c.laneWait, c.laneCwnd, c.problem, c.moves, c.servedBy} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	up := 0.0
	if st.State == "up" {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.rtt, prometheus.GaugeValue, st.RTT.Seconds())
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(st.Reconnects))
	for _, s := range st.Services {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.BytesIn), s.Name, "in")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.BytesOut), s.Name, "out")
		ch <- prometheus.MustNewConstMetric(c.flows, prometheus.GaugeValue, float64(s.Flows), s.Name)
		ch <- prometheus.MustNewConstMetric(c.flowsTotal, prometheus.CounterValue, float64(s.FlowsTotal), s.Name)
		ch <- prometheus.MustNewConstMetric(c.dialRefused, prometheus.CounterValue, float64(s.DialsRefused), s.Name)
		if s.Mode != "" {
			ch <- prometheus.MustNewConstMetric(c.moves, prometheus.CounterValue, float64(s.Moves), s.Name)
			ch <- prometheus.MustNewConstMetric(c.servedBy, prometheus.GaugeValue, float64(len(s.ServedBy)), s.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.bundles, prometheus.CounterValue, float64(st.BundlesSent))
	ch <- prometheus.MustNewConstMetric(c.bundled, prometheus.CounterValue, float64(st.BundledDatagrams))
	ch <- prometheus.MustNewConstMetric(c.bundlesIn, prometheus.CounterValue, float64(st.BundlesReceived))
	ch <- prometheus.MustNewConstMetric(c.sendWait, prometheus.CounterValue, st.SendWait.Seconds())
	ch <- prometheus.MustNewConstMetric(c.cwnd, prometheus.GaugeValue, float64(st.CongestionWindow))
	for reason, n := range map[string]uint64{"queue_full": st.DroppedQueueFull, "receive_queue_full": st.DroppedReceiveQueueFull, "too_large": st.DroppedTooLarge,
		"no_peer": st.DroppedNoPeer, "unknown_flow": st.DroppedUnknown, "bad_header": st.BadHeaders} {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n), reason)
	}
	for _, l := range st.DatagramConnections {
		n := strconv.Itoa(l.Index)
		ch <- prometheus.MustNewConstMetric(c.laneUp, prometheus.GaugeValue, b2f(l.State == "up"), n)
		ch <- prometheus.MustNewConstMetric(c.laneOwn, prometheus.GaugeValue, b2f(l.Own), n)
		ch <- prometheus.MustNewConstMetric(c.laneBundles, prometheus.CounterValue, float64(l.BundlesSent), n)
		ch <- prometheus.MustNewConstMetric(c.laneWait, prometheus.CounterValue, l.SendWait.Seconds(), n)
		ch <- prometheus.MustNewConstMetric(c.laneCwnd, prometheus.GaugeValue, float64(l.CongestionWindow), n)
	}
	if st.Role == RoleClient {
		ch <- prometheus.MustNewConstMetric(c.problem, prometheus.GaugeValue, b2f(st.Problem == ProblemServerChanged))
	}
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.Rejected), "certificate")
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.EnrollRefused), "enrollment")
}

// register adds the end's collector to reg (nil: none).
func register(reg prometheus.Registerer, stats func() Stats) {
	if reg != nil {
		_ = reg.Register(newCollector(stats))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
