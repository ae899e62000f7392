package app

import (
	"context"
	"time"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/store"
)

// clusterStore is the store's part that keeps the registrations each node
// of a cluster holds (both backends have it).
type clusterStore interface {
	sipedge.ClusterStore
	ClusterRegistrations(ctx context.Context, aliveSince, now time.Time) ([]store.ClusterRegistration, error)
}

// clusterStoreOf is st's cluster part, nil when it has none.
func clusterStoreOf(st store.Store) clusterStore {
	if t, ok := st.(auditTee); ok {
		st = t.Store
	}
	cs, _ := st.(clusterStore)
	return cs
}

// clusterRegistrations is the API's view of the cluster's registrations:
// those of every node whose heartbeat is current.
type clusterRegistrations struct{ cs clusterStore }

func (c clusterRegistrations) ClusterRegistrations(ctx context.Context) ([]store.ClusterRegistration, error) {
	now := time.Now()
	return c.cs.ClusterRegistrations(ctx, now.Add(-sipedge.ClusterStale), now)
}

// bothKeys calls each of fs that is set.
func bothKeys(fs ...func(string)) func(string) {
	var set []func(string)
	for _, f := range fs {
		if f != nil {
			set = append(set, f)
		}
	}
	switch len(set) {
	case 0:
		return nil
	case 1:
		return set[0]
	}
	return func(k string) {
		for _, f := range set {
			f(k)
		}
	}
}

// clusterService is the API's Cluster: nil when the store has no cluster
// part.
func (a *App) clusterService() api.ClusterService {
	if cs := clusterStoreOf(a.st); cs != nil {
		return clusterRegistrations{cs}
	}
	return nil
}
