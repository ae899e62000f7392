package app

import (
	"context"

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
