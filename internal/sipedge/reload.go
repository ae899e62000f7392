package sipedge

import (
	"slices"

	"github.com/portico-edge/portico/internal/policy"
)

// liveConfig is the part of the configuration Reload replaces while calls
// and registrations go on. Read it through lc; a handler that uses several
// fields loads it once, so that it sees one configuration.
type liveConfig struct {
	cfg    Config
	policy *policy.Policy // the call rules, the guest policy's among them
	cs     *callServers
}

// lc returns the configuration in force.
func (s *Server) lc() *liveConfig { return s.live.Load() }

// Reload applies cfg to the running SIP edge without dropping a call or a
// registration. It takes effect for the next request: guest policy,
// federation (allowed domains, open B2B), limits, topology hiding, the
// no-answer, failover and probe timeouts, redirects, the NAT binding
// expiry, and the call servers (a server kept keeps its health; a removed
// one gets no new requests, while calls through it go on). What needs a
// restart (listeners, domain, external host, probe interval, UDP
// keepalive, DNS server, stream limits, UDP receive buffer) keeps its running value and is returned as config
// paths (sip.listeners, ...). A cfg that does not validate changes nothing.
func (s *Server) Reload(cfg Config) (restart []string, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	run := s.cfg
	for _, f := range []struct {
		path    string
		changed bool
	}{
		{"sip.listeners", !slices.Equal(cfg.Listeners, run.Listeners)},
		{"sip.domain", cfg.Domain != run.Domain},
		{"sip.external_host", cfg.ExternalHost != run.ExternalHost},
		{"sip.probe_interval", cfg.ProbeInterval != run.ProbeInterval},
		{"sip.udp_keepalive", cfg.UDPKeepalive != run.UDPKeepalive},
		{"sip.federation.dns_server", cfg.Federation.DNSServer != run.Federation.DNSServer},
		{"sip.tcp", cfg.Streams != run.Streams},
		{"sip.udp_receive_buffer", cfg.UDPReceiveBuffer != run.UDPReceiveBuffer},
	} {
		if f.changed {
			restart = append(restart, f.path)
		}
	}
	cfg.Listeners, cfg.Domain, cfg.ExternalHost = run.Listeners, run.Domain, run.ExternalHost
	cfg.ProbeInterval, cfg.UDPKeepalive, cfg.Federation.DNSServer = run.ProbeInterval, run.UDPKeepalive, run.Federation.DNSServer
	cfg.Streams, cfg.UDPReceiveBuffer = run.Streams, run.UDPReceiveBuffer
	old := s.lc()
	s.live.Store(&liveConfig{cfg: cfg, policy: newCallPolicy(cfg), cs: newCallServers(cfg.CallServers, s.m, old.cs)})
	s.log.Info("sip configuration reloaded", "restart_needed", restart)
	return restart, nil
}
