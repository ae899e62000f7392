package sipedge

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/store"
)

// Scale-out: several nodes share one store and sit behind DNS SRV or a
// load balancer. Each node relays REGISTERs with a Path naming its own
// internal address and its name (register.go), so the call server sends a
// call for a user to the node that holds the user's flow, and each node
// publishes the registrations it holds to the shared store so that every
// node's API lists the cluster's.

// ClusterHeartbeat is how often a Publisher writes its batch and its
// heartbeat; ClusterStale is the age after which a node's heartbeat is
// stale and readers ignore its registrations (it stopped without removing
// them).
const (
	ClusterHeartbeat = time.Second
	ClusterStale     = 10 * time.Second
)

// ClusterStore is the shared store a node publishes its registrations to
// (*sqlstore.DB is one).
type ClusterStore interface {
	PublishRegistrations(ctx context.Context, node string, now time.Time, put, del []store.ClusterRegistration) error
	LeaveCluster(ctx context.Context, node string) error
}

// Publisher writes the registrations this node holds (not those the HA
// peer replicated to it) to the cluster's shared store, off the request
// path: the registrar marks a binding's key when it is stored, refreshed
// or removed (Changed), and once per ClusterHeartbeat the marked bindings
// are written or deleted in one transaction together with the node's
// heartbeat and the deletion of every expired row. A batch the store
// refuses stays marked and is written with the next one; the failure is
// counted and logged once until a batch succeeds. At start the node's rows
// from an earlier run are removed and every binding it holds is written;
// when Run returns the node's rows and heartbeat are removed.
type Publisher struct {
	st     ClusterStore
	node   string
	log    *slog.Logger
	failed prometheus.Counter

	mu    sync.Mutex
	dirty map[string]struct{}
}

// NewPublisher makes the publisher of node's registrations; reg receives
// its metric (nil: not exported).
func NewPublisher(st ClusterStore, node string, log *slog.Logger, reg prometheus.Registerer) *Publisher {
	if log == nil {
		log = slog.Default()
	}
	p := &Publisher{st: st, node: node, log: log.With("component", "sip-cluster"), dirty: map[string]struct{}{},
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "portico_sip_cluster_publish_failures_total",
			Help: "Batches of registrations the shared store refused (retried with the next batch)."})}
	if reg != nil {
		reg.MustRegister(p.failed)
	}
	return p
}

// Changed marks a binding's key for the next batch. It is the SIP edge's
// Deps.OnRegistration (called with the registrar's lock held) and returns
// at once.
func (p *Publisher) Changed(key string) {
	p.mu.Lock()
	p.dirty[key] = struct{}{}
	p.mu.Unlock()
}

// Run publishes s's registrations until ctx ends, then removes them.
func (p *Publisher) Run(ctx context.Context, s *Server) error {
	if err := p.st.LeaveCluster(ctx, p.node); err != nil {
		p.log.Warn("cluster registrations: removing an earlier run's rows", "err", err)
	}
	for _, k := range s.RegistrationKeys() {
		p.Changed(k)
	}
	t := time.NewTicker(ClusterHeartbeat)
	defer t.Stop()
	failing := false
	for {
		err := p.flush(ctx, s)
		switch {
		case err != nil && ctx.Err() == nil:
			p.failed.Inc()
			if !failing {
				p.log.Warn("cluster registrations: publishing failed, retrying", "err", err)
			}
			failing = true
		case err == nil && failing:
			p.log.Info("cluster registrations: publishing again")
			failing = false
		}
		select {
		case <-ctx.Done():
			lc, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := p.st.LeaveCluster(lc, p.node)
			cancel()
			if err != nil {
				p.log.Warn("cluster registrations: removing this node's rows", "err", err)
			}
			return nil
		case <-t.C:
		}
	}
}

// flush writes the marked bindings and the heartbeat; on failure the keys
// are marked again.
func (p *Publisher) flush(ctx context.Context, s *Server) error {
	p.mu.Lock()
	keys := p.dirty
	p.dirty = map[string]struct{}{}
	p.mu.Unlock()
	var put, del []store.ClusterRegistration
	for k := range keys {
		if st, ok := s.ExportRegistration(k); ok {
			i := st.Info
			put = append(put, store.ClusterRegistration{Node: p.node, AOR: i.AOR, Contact: i.Contact, Source: i.Source,
				Transport: i.Transport, Registered: i.Registered, Refreshed: i.Refreshed, Expires: i.Expires})
			continue
		}
		aor, contact, _ := strings.Cut(k, "\x00")
		del = append(del, store.ClusterRegistration{Node: p.node, AOR: aor, Contact: contact})
	}
	err := p.st.PublishRegistrations(ctx, p.node, time.Now(), put, del)
	if err != nil {
		p.mu.Lock()
		for k := range keys {
			p.dirty[k] = struct{}{}
		}
		p.mu.Unlock()
	}
	return err
}

// pathNode is name as a Path URI parameter value: empty when name holds a
// character a URI parameter does not carry unescaped (node names are
// DNS-like labels in practice).
func pathNode(name string) string {
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.!~*'", c)) {
			return ""
		}
	}
	return name
}

// otherNodeFlow refuses an inside request whose Route is another node's
// Path (its node parameter names a node other than this one) and whose
// flow token this node cannot read: the flow is held by that node, and a
// call sent from here would reach the endpoint from an address its NAT
// does not let in. It returns 404 (the user is not reachable through this
// node), or 0 when no Route names another node. The call server normally
// sends the request to the node its Path names; this catches a request
// that a load balancer between the call server and the nodes sent
// elsewhere.
func (s *Server) otherNodeFlow(req *sip.Request) (int, string) {
	for _, h := range allHeaders(req, "Route") {
		r, ok := h.(*sip.RouteHeader)
		if !ok || r.Address.User == "" || r.Address.UriParams == nil {
			continue
		}
		if n, ok := r.Address.UriParams.Get("node"); ok && n != "" && n != pathNode(s.deps.Node) {
			s.m.rejected.WithLabelValues("other_node").Inc()
			s.log.Debug("inside request for a flow another node holds", "node", n, "method", string(req.Method))
			return 404, "Not Found"
		}
	}
	return 0, ""
}
