package guard

import (
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Method is a rate-limited SIP request method (RateLimits).
type Method uint8

// Rate-limited methods.
const (
	MethodRegister Method = iota
	MethodInvite
	MethodOptions
	numLimits
)

// Rate is a token bucket per source: PerSecond on average, Burst at once.
type Rate struct {
	// PerSecond is the sustained rate; 0 turns the limit off.
	PerSecond float64 `yaml:"per_second" json:"per_second"`
	// Burst is how many may come at once. Default: one second's worth, at least 1.
	Burst int `yaml:"burst" json:"burst"`
}

// RateLimits bound SIP requests per source (an IPv4 address or IPv6
// /IPv6Prefix). TURN Allocate has its own bucket (turn.rate_per_second)
// but follows Action (RateLimitDrop).
type RateLimits struct {
	// Register defaults to 5/s with a burst of 50; Invite to 2/s, burst 20;
	// Options to 5/s, burst 50.
	Register *Rate `yaml:"register,omitempty" json:"register,omitempty"`
	Invite   *Rate `yaml:"invite,omitempty" json:"invite,omitempty"`
	Options  *Rate `yaml:"options,omitempty" json:"options,omitempty"`
	// Action over the limit: "reject" (default: 503 with Retry-After) or
	// "drop" (silence).
	Action string `yaml:"action" json:"action"`
}

var defaultRates = [numLimits]Rate{{PerSecond: 5, Burst: 50}, {PerSecond: 2, Burst: 20}, {PerSecond: 5, Burst: 50}}

func (rl RateLimits) settings(add func(path, format string, a ...any)) (b [numKinds]bucket, drop bool) {
	for i, r := range []*Rate{rl.Register, rl.Invite, rl.Options} {
		name := []string{"register", "invite", "options"}[i]
		rate := defaultRates[i]
		if r != nil {
			rate = *r
		}
		if rate.PerSecond < 0 || math.IsNaN(rate.PerSecond) || math.IsInf(rate.PerSecond, 0) {
			add("rate_limits."+name+".per_second", "%v is not a rate", rate.PerSecond)
			continue
		}
		if rate.Burst < 0 {
			add("rate_limits."+name+".burst", "%d is negative", rate.Burst)
			continue
		}
		if rate.PerSecond == 0 {
			continue
		}
		if rate.Burst == 0 {
			rate.Burst = max(1, int(math.Ceil(rate.PerSecond)))
		}
		b[i] = bucket{cap: float64(rate.Burst), rate: rate.PerSecond / float64(time.Second)}
	}
	switch rl.Action {
	case "", "reject":
	case "drop":
		drop = true
	default:
		add("rate_limits.action", "%q is not reject or drop", rl.Action)
	}
	return b, drop
}

// Limit takes one request of method m from src's bucket. Over the limit, ok is false and
// retryAfter says when a request would pass again (whole seconds, at
// least 1); drop says the configured action is silence rather than 503.
// Allow-listed sources are never limited.
func (g *Guard) Limit(src netip.Addr, m Method) (ok bool, retryAfter time.Duration, drop bool) {
	s := g.set.Load()
	kind := Kind(m)
	if m >= numLimits || s.rates[kind].cap == 0 {
		return true, 0, false
	}
	src = src.Unmap()
	if !src.IsValid() || s.allowed(src) {
		return true, 0, false
	}
	b := s.rates[kind]
	now := g.now().UnixNano()
	ok = true
	g.limits.add(key(src, s.v6bits), kind, now, &s.rates, s.maxSources, func(e *entry) {
		if float64(e.levels[kind]) > b.cap {
			e.levels[kind]-- // refused requests take no token
			ok = false
			wait := (float64(e.levels[kind]) - (b.cap - 1)) / b.rate
			retryAfter = time.Duration(max(1, math.Ceil(wait/float64(time.Second)))) * time.Second
		}
	})
	if !ok {
		g.m.limited[m].Inc()
	}
	return ok, retryAfter, s.rateDrop
}

// RateLimitDrop reports whether the configured action over a rate limit
// (RateLimits.Action) is silence ("drop") rather than an error answer, for
// services that keep their own buckets (TURN Allocate) but follow the
// guard's action.
func (g *Guard) RateLimitDrop() bool { return g.set.Load().rateDrop }

// String names the method.
func (m Method) String() string {
	if m < numLimits {
		return []string{"register", "invite", "options"}[m]
	}
	return fmt.Sprintf("method(%d)", uint8(m))
}
