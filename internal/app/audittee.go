package app

import (
	"context"
	"errors"

	"github.com/portico-edge/portico/internal/store"
)

// auditTee is the store with every audit entry also sent to the remote
// syslog collector (log.syslog), when one is configured. The entry is
// sent whether or not the store took it: the collector is the copy that
// survives a store outage.
type auditTee struct {
	store.Store
	a *App
}

func (t auditTee) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	err := t.Store.AppendAudit(ctx, e)
	if l := t.a.log; l != nil {
		l.Syslog().Audit(e.Time, e.User, e.Source, e.Action, e.Target, e.Detail)
	}
	return err
}

// AddCalls hands a batch of call records to the store beneath in one call
// when it takes batches (one transaction instead of one per record); the
// embedded Store alone would hide that method from the history spool.
func (t auditTee) AddCalls(ctx context.Context, cs []store.CallRecord) error {
	if b, ok := t.Store.(interface {
		AddCalls(context.Context, []store.CallRecord) error
	}); ok {
		return b.AddCalls(ctx, cs)
	}
	var errs []error
	for _, c := range cs {
		errs = append(errs, t.Store.AddCall(ctx, c))
	}
	return errors.Join(errs...)
}
