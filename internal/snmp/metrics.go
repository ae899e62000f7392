package snmp

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a message is refused (portico_snmp_refused_total{reason}).
const (
	reasonMalformed = iota
	reasonVersion
	reasonPDU
	reasonRate
	reasonCommunity
	reasonUnknownEngine
	reasonUnknownUser
	reasonSecLevel
	reasonDigest
	reasonTimeWindow
	reasonDecrypt
	numReasons
)

var reasonNames = [numReasons]string{"malformed", "version", "pdu", "rate", "community", "unknown_engine_id",
	"unknown_user", "unsupported_sec_level", "wrong_digest", "not_in_time_window", "decryption_error"}

// stats are the agent's counters; the usmStats objects (RFC 3414 §5) are
// read from the same counts.
type stats struct {
	refused  [numReasons]atomic.Uint64
	requests [2]atomic.Uint64 // v2c, v3
	sent     atomic.Uint64
	failed   atomic.Uint64
	dropped  atomic.Uint64
}

func newStats(reg prometheus.Registerer) *stats {
	s := &stats{}
	if reg == nil {
		return s
	}
	for i, name := range reasonNames {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "portico", Subsystem: "snmp", Name: "refused_total",
			Help: "SNMP messages refused, by reason (malformed messages and rate-limited sources among them).", ConstLabels: prometheus.Labels{"reason": name}},
			func() float64 { return float64(s.refused[i].Load()) }))
	}
	for i, v := range []string{"v2c", "v3"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "portico", Subsystem: "snmp", Name: "requests_total",
			Help: "SNMP requests answered, by version.", ConstLabels: prometheus.Labels{"version": v}},
			func() float64 { return float64(s.requests[i].Load()) }))
	}
	for _, c := range []struct {
		result string
		n      *atomic.Uint64
	}{{"sent", &s.sent}, {"failed", &s.failed}, {"dropped", &s.dropped}} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "portico", Subsystem: "snmp", Name: "notifications_total",
			Help: "SNMP notifications per receiver: sent (an inform acknowledged), failed, or dropped because the queue was full.", ConstLabels: prometheus.Labels{"result": c.result}},
			func() float64 { return float64(c.n.Load()) }))
	}
	return s
}

func (s *stats) refuse(reason int) { s.refused[reason].Add(1) }

func (s *stats) refusePDU(err error) {
	if errors.Is(err, errUnsupportedPDU) {
		s.refuse(reasonPDU)
		return
	}
	s.refuse(reasonMalformed)
}

func (s *stats) answered(version string) {
	if version == "v2c" {
		s.requests[0].Add(1)
	} else {
		s.requests[1].Add(1)
	}
}

// usm is the usmStats counter with column c.
func (s *stats) usm(c uint32) uint64 {
	r, ok := map[uint32]int{usmUnsupportedSecLevels: reasonSecLevel, usmNotInTimeWindows: reasonTimeWindow, usmUnknownUserNames: reasonUnknownUser,
		usmUnknownEngineIDs: reasonUnknownEngine, usmWrongDigests: reasonDigest, usmDecryptionErrors: reasonDecrypt}[c]
	if !ok {
		return 0
	}
	return s.refused[r].Load()
}
