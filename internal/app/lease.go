package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// leaseTTL is how long a node's hold on its store outlives its last
// renewal (every watchStore tick, 2 s): a node that crashed frees its store
// after this; a restart of the same node takes it back at once.
const leaseTTL = 30 * time.Second

// nodeIDFile holds the node's ID in the data directory: two nodes have two
// data directories, so two IDs, even with one node.name.
const nodeIDFile = "node-id"

// loadNodeID reads the node's ID, making one on the first start.
func loadNodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, nodeIDFile)
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("node id: %w", err)
	}
	var r [16]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return id, nil
}

// acquireLease makes this node the one that runs on the store. Until the
// nodes of a cluster get their own parts of the store, two nodes on one
// store would each import their configuration over the other's and loop
// on stale versions, so the second is refused unless Force says the first
// is gone.
func (a *App) acquireLease(ctx context.Context, name string) error {
	id, err := loadNodeID(a.opts.DataDir)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	now := time.Now().UTC()
	holder, err := a.st.AcquireLease(ctx, store.NodeLease{Node: id, Name: name, Host: host, StartedAt: now, RenewedAt: now}, leaseTTL, a.opts.Force)
	if errors.Is(err, store.ErrLeaseHeld) {
		return fmt.Errorf("store (%s): node %q on %s (node id %s) is running on this store, last seen %s ago; two nodes cannot share one store yet, "+
			"each would overwrite the other's configuration. Stop that node, give this one its own store, or, if that node is gone, "+
			"wait %s after it was last seen or start this one with --force: %w",
			a.st.Backend(), holder.Name, holder.Host, holder.Node, now.Sub(holder.RenewedAt).Round(time.Second), leaseTTL, err)
	}
	if err != nil {
		return fmt.Errorf("store (%s): take the node lease: %w", a.st.Backend(), err)
	}
	if a.opts.Force {
		a.log.Warn("started with --force: this node took the store over from any node that held it", "component", "store", "node", id)
	}
	a.nodeID = id
	return nil
}

// renewLease keeps the lease alive; losing it to another node (--force)
// makes this node unready and says so once.
func (a *App) renewLease(ctx context.Context) {
	if a.nodeID == "" || a.leaseLost.Load() != nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := a.st.RenewLease(rctx, a.nodeID, time.Now().UTC())
	cancel()
	if errors.Is(err, store.ErrLeaseHeld) {
		msg := "another node took this store over (started with --force); this node no longer owns its configuration: stop it"
		a.leaseLost.Store(&msg)
		a.log.Error(msg, "component", "store")
		return
	}
	if err != nil && ctx.Err() == nil {
		a.log.Warn("store lease not renewed; retrying", "component", "store", "err", err)
	}
}
