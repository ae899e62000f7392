package turn

import "slices"

// Reload applies cfg's credentials (REST secret and maximum TTL), peer
// policy and own addresses (interfaces are read again), quotas, rate limit
// and maximum allocation age to the running service, for the requests that
// follow; allocations in place stay (also
// when now over a quota). Listeners and their socket settings, realm,
// relay addresses and ports, the default lifetime and SOFTWARE are bound
// at start and keep their running values: those that differ from what the
// service started with are returned as field paths (turn.realm,
// turn.listen.udp, ...), for the caller's pending-restart list. A cfg that
// does not validate changes nothing.
//
// A new REST secret takes effect at once: credentials minted with the old
// one are refused from then on (the engine's authentication takes one key
// per username, so two secrets cannot both be accepted).
func (s *Server) Reload(cfg Config) (restart []string, err error) {
	v, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	old := s.live.Load()
	if v.RateLimit != old.RateLimit {
		s.limiter.Store(newRateLimiter(v.RateLimit.PerSecond, v.RateLimit.Burst))
	}
	s.alloc.setQuota(v.Quota.PerUser, v.Quota.Total)
	s.live.Store(v)
	s.refreshOwn(v)
	restart = bindTimeChanges(&s.cfg.Config, &v.Config)
	s.log.Info("turn configuration reloaded", "restart_needed", restart)
	return restart, nil
}

// bindTimeChanges names the fields only a restart applies that differ
// between boot (what the service started with) and next.
func bindTimeChanges(boot, next *Config) []string {
	b, n := boot.Listen, next.Listen
	var out []string
	for _, f := range []struct {
		path    string
		changed bool
	}{
		{"turn.listen.udp", !slices.Equal(b.UDP, n.UDP)},
		{"turn.listen.tcp", !slices.Equal(b.TCP, n.TCP)},
		{"turn.listen.tls", !slices.Equal(b.TLS, n.TLS)},
		{"turn.listen.dtls", !slices.Equal(b.DTLS, n.DTLS)},
		{"turn.listen.sockets", b.Sockets != n.Sockets},
		{"turn.listen.socket_buffer_kb", b.SocketBufferKB != n.SocketBufferKB},
		{"turn.listen.max_conns", b.MaxConns != n.MaxConns},
		{"turn.listen.idle_timeout", b.IdleTimeout != n.IdleTimeout},
		{"turn.listen.max_conns_per_source", b.MaxConnsPerSource != n.MaxConnsPerSource},
		{"turn.listen.handshake_timeout", b.HandshakeTimeout != n.HandshakeTimeout},
		{"turn.realm", boot.Realm != next.Realm},
		{"turn.relay.address", boot.Relay.Address != next.Relay.Address},
		{"turn.relay.bind", boot.Relay.Bind != next.Relay.Bind},
		{"turn.relay.port_min", boot.Relay.PortMin != next.Relay.PortMin},
		{"turn.relay.port_max", boot.Relay.PortMax != next.Relay.PortMax},
		{"turn.lifetime.default", boot.Lifetime.Default != next.Lifetime.Default},
		{"turn.software", boot.Software != next.Software},
	} {
		if f.changed {
			out = append(out, f.path)
		}
	}
	return out
}
