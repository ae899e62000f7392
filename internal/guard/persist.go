package guard

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// storeTimeout bounds one call to the BlockStore.
const storeTimeout = 5 * time.Second

// ManualBlock is a block placed by hand, as a BlockStore keeps it.
type ManualBlock struct {
	Prefix       netip.Prefix
	Reason       string
	Since, Until time.Time
}

// BlockStore keeps manual blocks across restarts. Automatic blocks are not
// stored: they are the guard's reaction to traffic it saw, and a source
// that keeps misbehaving after a restart is blocked again within its
// limit's window.
type BlockStore interface {
	// SaveBlock stores b, replacing a block of the same prefix.
	SaveBlock(ctx context.Context, b ManualBlock) error
	// DeleteBlock forgets the block of p; one that is not stored is no error.
	DeleteBlock(ctx context.Context, p netip.Prefix) error
	// LoadBlocks returns the stored blocks (it may leave out, or drop,
	// those that ended).
	LoadBlocks(ctx context.Context) ([]ManualBlock, error)
}

// saveBlock stores a manual block that is in force; its failure is
// returned, the block holding until it ends or the node restarts.
func (g *Guard) saveBlock(b ManualBlock) error {
	if g.store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := g.store.SaveBlock(ctx, b); err != nil {
		return fmt.Errorf("guard: block of %s is in force but not stored, so a restart lifts it: %w", b.Prefix, err)
	}
	return nil
}

// deleteBlock forgets a lifted manual block in the store.
func (g *Guard) deleteBlock(p netip.Prefix) error {
	if g.store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := g.store.DeleteBlock(ctx, p); err != nil {
		return fmt.Errorf("guard: block of %s is lifted but still stored, so a restart restores it: %w", p, err)
	}
	return nil
}

// LoadBlocks puts the manual blocks kept in Deps.Store back in force, each
// until its original end (ended ones are skipped; ones on the allow list
// now are skipped and logged). Call it once after New, before the services
// that ask Blocked start; Run mirrors them into the kernel set.
func (g *Guard) LoadBlocks(ctx context.Context) error {
	if g.store == nil {
		return nil
	}
	bs, err := g.store.LoadBlocks(ctx)
	if err != nil {
		return fmt.Errorf("guard: load manual blocks: %w", err)
	}
	s := g.set.Load()
	now := g.now()
	n := 0
	for _, mb := range bs {
		p := mb.Prefix.Masked()
		if !mb.Until.After(now) {
			continue
		}
		if s.allowed(p.Addr()) {
			g.log.Warn("stored manual block not restored: the source is on the allow list", "source", p.String())
			continue
		}
		b := &block{prefix: p, reason: mb.Reason, manual: true, since: mb.Since, until: mb.Until.UnixNano()}
		g.blockMu.Lock()
		g.blocks.Store(g.blocks.Load().with(b))
		g.blockMu.Unlock()
		g.kernelOp(kernelOp{add: true, prefix: p, ttl: mb.Until.Sub(now)})
		n++
	}
	if n > 0 {
		g.log.Info("manual blocks restored", "count", n)
	}
	return nil
}
