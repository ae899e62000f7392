package sipedge

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// callServers keeps the inside call servers' health and picks one per
// request: the lowest priority among the healthy ones, by weight.
type callServers struct {
	mu   sync.Mutex
	list []*callServer
	m    *metrics
}

type callServer struct {
	CallServer
	up       bool
	lastSeen time.Time
}

// CallServerInfo is a call server's state for the API.
type CallServerInfo struct {
	CallServer
	Up       bool      `json:"up"`
	LastSeen time.Time `json:"last_seen"`
}

// newCallServers makes the call server set of cfg. A server already in
// old (same address and transport) keeps its health and last-seen time; a
// new one starts up; the gauge of a server no longer listed is removed.
func newCallServers(cfg []CallServer, m *metrics, old *callServers) *callServers {
	cs := &callServers{m: m}
	// The old set's health is copied under its lock: its probes and
	// failed requests still mark it while the new set is made.
	type health struct {
		up       bool
		lastSeen time.Time
	}
	kept := map[CallServer]health{}
	if old != nil {
		old.mu.Lock()
		for _, c := range old.list {
			kept[CallServer{Address: c.Address, Transport: c.Transport}] = health{c.up, c.lastSeen}
		}
		old.mu.Unlock()
	}
	listed := map[string]bool{}
	for _, c := range cfg {
		n := &callServer{CallServer: c, up: true}
		if k, ok := kept[CallServer{Address: c.Address, Transport: c.Transport}]; ok {
			n.up, n.lastSeen = k.up, k.lastSeen
		}
		cs.list = append(cs.list, n)
		listed[c.Address] = true
		up := 0.0
		if n.up {
			up = 1
		}
		m.serverUp.WithLabelValues(c.Address).Set(up)
	}
	for k := range kept {
		if !listed[k.Address] {
			m.serverUp.DeleteLabelValues(k.Address)
		}
	}
	return cs
}

// order returns the servers to try, best first: healthy ones by priority
// and weighted random order within a priority, then the unhealthy ones.
func (cs *callServers) order() []CallServer {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	type cand struct {
		CallServer
		up  bool
		key float64
	}
	cands := make([]cand, 0, len(cs.list))
	for _, c := range cs.list {
		// Weighted random shuffle (Efraimidis-Spirakis): key = u^(1/w).
		k := rand.Float64()
		w := float64(c.Weight)
		key := math.Pow(k, 1/w)
		cands = append(cands, cand{c.CallServer, c.up, key})
	}
	// slices, not sort.SliceStable: no reflection, no allocation (this
	// runs for every REGISTER and call).
	slices.SortStableFunc(cands, func(a, b cand) int {
		if a.up != b.up {
			if a.up {
				return -1
			}
			return 1
		}
		if a.Priority != b.Priority {
			return cmp.Compare(a.Priority, b.Priority)
		}
		return cmp.Compare(b.key, a.key)
	})
	out := make([]CallServer, len(cands))
	for i, c := range cands {
		out[i] = c.CallServer
	}
	return out
}

// mark records a server's health from a probe or a failed request.
func (cs *callServers) mark(addr string, up bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.list {
		if c.Address == addr {
			c.up = up
			if up {
				c.lastSeen = time.Now()
				cs.m.serverUp.WithLabelValues(addr).Set(1)
			} else {
				cs.m.serverUp.WithLabelValues(addr).Set(0)
			}
		}
	}
}

func (cs *callServers) info() []CallServerInfo {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]CallServerInfo, 0, len(cs.list))
	for _, c := range cs.list {
		out = append(out, CallServerInfo{CallServer: c.CallServer, Up: c.up, LastSeen: c.lastSeen})
	}
	return out
}

// CallServers reports each call server and whether its probes succeed.
func (s *Server) CallServers() []CallServerInfo { return s.lc().cs.info() }

// routeURI is the loose Route naming a call server.
func routeURI(c CallServer) sip.Uri {
	host, port, _ := sip.ParseAddr(c.Address)
	u := sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sip.NewParams()}
	if c.Transport != "udp" {
		u.UriParams.Add("transport", c.Transport)
	}
	u.UriParams.Add("lr", "")
	return u
}

// probeLoop probes the current call servers (Reload may replace them)
// every ProbeInterval until done.
func (s *Server) probeLoop(done <-chan struct{}) {
	if s.cfg.ProbeInterval < 0 {
		return
	}
	t := time.NewTicker(s.cfg.ProbeInterval)
	defer t.Stop()
	for {
		s.lc().cs.probeAll(s, done)
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

func (cs *callServers) probeAll(s *Server, done <-chan struct{}) {
	cs.mu.Lock()
	list := make([]CallServer, 0, len(cs.list))
	for _, c := range cs.list {
		list = append(list, c.CallServer)
	}
	cs.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(s.ctx, s.lc().cfg.ProbeTimeout) // Close cancels it
			defer cancel()
			up := s.probe(ctx, c) == nil
			select {
			case <-done:
				return
			default:
			}
			cs.mark(c.Address, up)
		}()
	}
	wg.Wait()
}

// probe sends one OPTIONS to a call server; any response means it is up.
func (s *Server) probe(ctx context.Context, c CallServer) error {
	ru := routeURI(c)
	ru.UriParams.Remove("lr")
	_, err := s.options(ctx, ru, c.Transport, c.Address)
	return err
}

// options sends OPTIONS for ru from the inside to addr over transport and
// returns the final response.
func (s *Server) options(ctx context.Context, ru sip.Uri, transport, addr string) (*sip.Response, error) {
	req := sip.NewRequest(sip.OPTIONS, ru)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "portico", Host: s.int.host}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: ru.User, Host: ru.Host, Port: ru.Port}, Params: sip.NewParams()}
	cid := sip.CallIDHeader(sip.GenerateTagN(20))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	req.AppendHeader(&mf)
	s.int.prepare(req, transport, addr)
	return s.int.do(ctx, req)
}
