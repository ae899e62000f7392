package turn

import (
	"net/netip"
	"sync"
	"time"
)

// maxBuckets bounds the limiter's memory; past it idle buckets are dropped.
const maxBuckets = 1 << 16

// rateLimiter is a token bucket per client IP.
type rateLimiter struct {
	rate  float64 // tokens per second; <= 0: unlimited
	burst float64

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	return &rateLimiter{rate: perSecond, burst: float64(burst), buckets: map[netip.Addr]*bucket{}}
}

// allow takes one token for ip at now, reporting whether one was there.
func (r *rateLimiter) allow(ip netip.Addr, now time.Time) bool {
	if r.rate <= 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[ip]
	if b == nil {
		if len(r.buckets) >= maxBuckets {
			r.sweep(now)
		}
		b = &bucket{tokens: r.burst, last: now}
		r.buckets[ip] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(r.burst, b.tokens+el*r.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep drops full buckets; if none were full, all of them.
func (r *rateLimiter) sweep(now time.Time) {
	for ip, b := range r.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*r.rate >= r.burst {
			delete(r.buckets, ip)
		}
	}
	if len(r.buckets) >= maxBuckets {
		clear(r.buckets)
	}
}
