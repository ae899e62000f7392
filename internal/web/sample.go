package web

import (
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// gauges are the instantaneous figures the dashboard shows, read from the
// node's Prometheus registry.
type gauges struct {
	SIPCalls   float64 `json:"sip_calls"`
	H323Calls  float64 `json:"h323_calls"`
	SIPRegs    float64 `json:"sip_registrations"`
	H323Regs   float64 `json:"h323_registrations"`
	TURNAllocs float64 `json:"turn_allocations"`
	ProxyConns float64 `json:"proxy_connections"`
	RelayOpen  float64 `json:"relay_streams"`
	relayPkts  float64
	relayBytes float64
	RelayPPS   float64 `json:"relay_pps"`
	RelayMbps  float64 `json:"relay_mbps"`
	relayLost  float64
	// RelayLostPS is RTP packets lost per second before the relay (its
	// sequence-gap count), over the last sample interval.
	RelayLostPS float64 `json:"relay_lost_pps"`
	ServersUp   float64 `json:"call_servers_up"`
	ServersDown float64 `json:"call_servers_down"`
}

// sample is one point of the ring.
type sample struct {
	T time.Time
	gauges
}

// ring keeps the last n samples; it is safe for concurrent use.
type ring struct {
	mu  sync.Mutex
	buf []sample
	n   int // samples held
	at  int // next write position
}

func newRing(n int) *ring { return &ring{buf: make([]sample, n)} }

func (r *ring) add(s sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.at] = s
	r.at = (r.at + 1) % len(r.buf)
	r.n = min(r.n+1, len(r.buf))
}

// all returns the samples held, oldest first.
func (r *ring) all() []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]sample, 0, r.n)
	start := (r.at - r.n + len(r.buf)) % len(r.buf)
	for i := 0; i < r.n; i++ {
		out = append(out, r.buf[(start+i)%len(r.buf)])
	}
	return out
}

func (r *ring) last() (sample, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return sample{}, false
	}
	return r.buf[(r.at-1+len(r.buf))%len(r.buf)], true
}

// sums are the metrics whose series add up to one figure.
var sums = map[string]func(*gauges) *float64{
	"portico_sip_calls_active":               func(g *gauges) *float64 { return &g.SIPCalls },
	"portico_h323_calls":                     func(g *gauges) *float64 { return &g.H323Calls },
	"portico_sip_registrations":              func(g *gauges) *float64 { return &g.SIPRegs },
	"portico_h323_registrations":             func(g *gauges) *float64 { return &g.H323Regs },
	"portico_turn_allocations":               func(g *gauges) *float64 { return &g.TURNAllocs },
	"portico_accessproxy_active_connections": func(g *gauges) *float64 { return &g.ProxyConns },
	"portico_media_open":                     func(g *gauges) *float64 { return &g.RelayOpen },
	"portico_media_packets_total":            func(g *gauges) *float64 { return &g.relayPkts },
	"portico_media_forwarded_bytes_total":    func(g *gauges) *float64 { return &g.relayBytes },
	"portico_media_packets_lost_total":       func(g *gauges) *float64 { return &g.relayLost },
}

// read gathers the registry's current figures. A metric a disabled
// service never registered reads as zero.
func (s *Server) read() gauges {
	var g gauges
	mfs, err := s.deps.Gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		s.log.Debug("gather metrics", "err", err)
		return g
	}
	for _, mf := range mfs {
		if mf.GetName() == "portico_sip_call_server_up" {
			for _, m := range mf.GetMetric() {
				if value(m) > 0 {
					g.ServersUp++
				} else {
					g.ServersDown++
				}
			}
			continue
		}
		if field := sums[mf.GetName()]; field != nil {
			dst := field(&g)
			for _, m := range mf.GetMetric() {
				*dst += value(m)
			}
		}
	}
	return g
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// sample adds the current figures to the ring, with the relay's rates
// (packets, Mbit/s, packets lost) since the previous sample.
func (s *Server) sample() {
	now := s.deps.Now()
	g := s.read()
	if prev, ok := s.ring.last(); ok {
		if dt := now.Sub(prev.T).Seconds(); dt > 0 && g.relayPkts >= prev.relayPkts {
			g.RelayPPS = (g.relayPkts - prev.relayPkts) / dt
			g.RelayMbps = (g.relayBytes - prev.relayBytes) * 8 / dt / 1e6
		}
		if dt := now.Sub(prev.T).Seconds(); dt > 0 && g.relayLost >= prev.relayLost {
			g.RelayLostPS = (g.relayLost - prev.relayLost) / dt
		}
	}
	s.ring.add(sample{T: now, gauges: g})
}

// current is the figures now, with the relay rates of the latest sample.
func (s *Server) current() gauges {
	g := s.read()
	if last, ok := s.ring.last(); ok {
		g.RelayPPS, g.RelayMbps, g.RelayLostPS = last.RelayPPS, last.RelayMbps, last.RelayLostPS
	}
	return g
}
