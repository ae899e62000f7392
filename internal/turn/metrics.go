package turn

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds handles looked up once; the data path only adds.
type metrics struct {
	allocations      *prometheus.GaugeVec // by relay transport
	allocationsTotal prometheus.Counter
	rejections       *prometheus.CounterVec
	authFailures     *prometheus.CounterVec
	peersDenied      prometheus.Counter
	permissions      prometheus.Gauge
	connsRefused     prometheus.Counter
	connsIdle        prometheus.Counter
	bytes            *prometheus.CounterVec
	packets          *prometheus.CounterVec

	allocUDP, allocTCP         prometheus.Gauge
	rejUser, rejTotal, rejRate prometheus.Counter
	rejRateDrop                prometheus.Counter
	rejPorts                   prometheus.Counter
	authUnknown, authExpired   prometheus.Counter
	authIntegrity, authStore   prometheus.Counter
	authForeignNonce           prometheus.Counter
	bytesToPeer, bytesFromPeer prometheus.Counter
	pktsToPeer, pktsFromPeer   prometheus.Counter
	engineQueueDrops           prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		allocations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "portico", Subsystem: "turn", Name: "allocations",
			Help: "TURN allocations now active, by relay transport.",
		}, []string{"relay"}),
		allocationsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portico", Subsystem: "turn", Name: "allocations_created_total",
			Help: "TURN allocations created.",
		}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portico", Subsystem: "turn", Name: "allocation_rejections_total",
			Help: "Authenticated allocation requests refused, by reason.",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portico", Subsystem: "turn", Name: "auth_failures_total",
			Help: "Failed STUN/TURN authentications, by reason.",
		}, []string{"reason"}),
		peersDenied: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portico", Subsystem: "turn", Name: "peer_denied_total",
			Help: "CreatePermission, ChannelBind or Connect requests refused by the peer address policy.",
		}),
		permissions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "portico", Subsystem: "turn", Name: "permissions",
			Help: "TURN permissions now installed.",
		}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portico", Subsystem: "turn", Name: "conns_refused_total",
			Help: "Stream connections closed at once because listen.max_conns were open.",
		}),
		connsIdle: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portico", Subsystem: "turn", Name: "conns_idle_closed_total",
			Help: "Stream connections closed by listen.idle_timeout without an allocation.",
		}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portico", Subsystem: "turn", Name: "relayed_bytes_total",
			Help: "Payload bytes relayed, counted as they pass, by direction.",
		}, []string{"direction"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portico", Subsystem: "turn", Name: "relayed_packets_total",
			Help: "Packets (or TCP reads/writes) relayed, counted as they pass, by direction.",
		}, []string{"direction"}),
		engineQueueDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portico", Subsystem: "turn", Name: "engine_queue_dropped_total",
			Help: "Peer datagrams for the TURN engine (no channel or permission known to the data path) dropped because the allocation's queue to it was full.",
		}),
	}
	m.allocations = register(reg, m.allocations)
	m.allocationsTotal = register(reg, m.allocationsTotal)
	m.rejections = register(reg, m.rejections)
	m.authFailures = register(reg, m.authFailures)
	m.peersDenied = register(reg, m.peersDenied)
	m.permissions = register(reg, m.permissions)
	m.connsRefused = register(reg, m.connsRefused)
	m.connsIdle = register(reg, m.connsIdle)
	m.bytes = register(reg, m.bytes)
	m.packets = register(reg, m.packets)
	m.engineQueueDrops = register(reg, m.engineQueueDrops)

	m.allocUDP = m.allocations.WithLabelValues("udp")
	m.allocTCP = m.allocations.WithLabelValues("tcp")
	m.rejUser = m.rejections.WithLabelValues("user_quota")
	m.rejTotal = m.rejections.WithLabelValues("total_quota")
	m.rejRate = m.rejections.WithLabelValues("rate_limit")
	m.rejRateDrop = m.rejections.WithLabelValues("rate_limit_dropped")
	m.rejPorts = m.rejections.WithLabelValues("no_port")
	m.authUnknown = m.authFailures.WithLabelValues("unknown_user")
	m.authExpired = m.authFailures.WithLabelValues("expired")
	m.authIntegrity = m.authFailures.WithLabelValues("bad_integrity")
	m.authStore = m.authFailures.WithLabelValues("store_error")
	m.authForeignNonce = m.authFailures.WithLabelValues("foreign_nonce")
	m.bytesToPeer = m.bytes.WithLabelValues("to_peer")
	m.bytesFromPeer = m.bytes.WithLabelValues("from_peer")
	m.pktsToPeer = m.packets.WithLabelValues("to_peer")
	m.pktsFromPeer = m.packets.WithLabelValues("from_peer")
	return m
}

// register registers c, or reuses the collector already registered under the
// same descriptor (a reloaded server keeps counting into the same series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
