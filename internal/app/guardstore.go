package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/store"
)

// guardBlocks keeps the guard's manual blocks in the store's guard_blocks
// table (docs/security.md: automatic blocks stay in memory).
type guardBlocks struct{ st store.Store }

var _ guard.BlockStore = guardBlocks{}

func (g guardBlocks) SaveBlock(ctx context.Context, b guard.ManualBlock) error {
	return g.st.PutGuardBlock(ctx, store.GuardBlock{Source: b.Prefix.String(), Reason: b.Reason, CreatedAt: b.Since.UTC(), ExpiresAt: b.Until.UTC()})
}

func (g guardBlocks) DeleteBlock(ctx context.Context, p netip.Prefix) error {
	if err := g.st.DeleteGuardBlock(ctx, p.String()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// LoadBlocks drops the blocks that ended, then lists the rest.
func (g guardBlocks) LoadBlocks(ctx context.Context) ([]guard.ManualBlock, error) {
	if _, err := g.st.DeleteExpiredGuardBlocks(ctx, time.Now()); err != nil {
		return nil, err
	}
	rows, err := g.st.GuardBlocks(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]guard.ManualBlock, 0, len(rows))
	for _, r := range rows {
		p, err := netip.ParsePrefix(r.Source)
		if err != nil {
			return nil, fmt.Errorf("guard_blocks: source %q: %w", r.Source, err)
		}
		out = append(out, guard.ManualBlock{Prefix: p, Reason: r.Reason, Since: r.CreatedAt, Until: r.ExpiresAt})
	}
	return out, nil
}
