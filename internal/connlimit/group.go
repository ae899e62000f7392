package connlimit

import (
	"net/netip"
	"sync"
)

// Group is the count of connections that listeners sharing it cap
// together: open in total and open per source. A Listener without one
// counts alone. Safe for concurrent use.
type Group struct {
	mu     sync.Mutex
	active int
	perSrc map[netip.Addr]int
}

// NewGroup returns an empty Group.
func NewGroup() *Group { return &Group{perSrc: map[netip.Addr]int{}} }

// take counts a connection from key in, unless that would pass maxConns or
// perSource (each off when not positive); then it returns the reason.
func (g *Group) take(key netip.Addr, maxConns, perSource int) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if maxConns > 0 && g.active >= maxConns {
		return ReasonMaxConns
	}
	if perSource > 0 && g.perSrc[key] >= perSource {
		return ReasonPerSource
	}
	g.active++
	g.perSrc[key]++
	return ""
}

// put uncounts a connection from key that take counted.
func (g *Group) put(key netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active--
	if n := g.perSrc[key] - 1; n > 0 {
		g.perSrc[key] = n
	} else {
		delete(g.perSrc, key)
	}
}

// Active returns the number of connections open on the Group's listeners.
func (g *Group) Active() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active
}
