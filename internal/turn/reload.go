package turn

// Reload applies cfg's credentials (REST secret and maximum TTL), peer
// policy and own addresses (interfaces are read again), quotas, rate limit and maximum allocation age to the running
// service, for the requests that follow; allocations in place stay (also
// when now over a quota). Listeners, realm, relay addresses and ports,
// socket settings, the default lifetime and SOFTWARE are bound at start and
// keep their running values: the caller reports those as needing a restart.
// A cfg that does not validate changes nothing.
//
// A new REST secret takes effect at once: credentials minted with the old
// one are refused from then on (the engine's authentication takes one key
// per username, so two secrets cannot both be accepted).
func (s *Server) Reload(cfg Config) error {
	v, err := cfg.validate()
	if err != nil {
		return err
	}
	old := s.live.Load()
	if v.RateLimit != old.RateLimit {
		s.limiter.Store(newRateLimiter(v.RateLimit.PerSecond, v.RateLimit.Burst))
	}
	s.alloc.setQuota(v.Quota.PerUser, v.Quota.Total)
	s.live.Store(v)
	s.refreshOwn(v)
	s.log.Info("turn configuration reloaded")
	return nil
}
