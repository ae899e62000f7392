package app

import (
	"context"
	"time"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/h323proxy"
	"github.com/portico-edge/portico/internal/hasync"
	"github.com/portico-edge/portico/internal/logging"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/turn"
)

// syncLink is the live state link to the HA peer (ha.sync) and the flow
// token key both nodes share, derived from its secret.
type syncLink struct {
	node       *hasync.Node
	flowSecret []byte
}

// buildSync makes the link when ha.sync names a listen or peer address;
// nil otherwise. It reads ha.sync.secret_file: the SIP edge needs the
// flow token key before it is built.
func buildSync(cfg *config.Config, d serviceDeps) (*syncLink, error) {
	sc := cfg.HA.Sync
	if !sc.Active() {
		return nil, nil
	}
	secret, err := sc.LoadSecret()
	if err != nil {
		return nil, config.FieldError{Path: "ha.sync.secret_file", Reason: err.Error()}
	}
	sc.Secret, sc.SecretFile = string(secret), ""
	name := d.node
	if name == "" {
		name = cfg.Node.Name
	}
	n, err := hasync.New(sc, hasync.Deps{Logger: logging.Component(d.log, "hasync"), Registerer: d.reg, Name: name})
	if err != nil {
		return nil, asConfigErrors(err)
	}
	return &syncLink{node: n, flowSecret: hasync.FlowSecret(secret)}, nil
}

// mediaChanged is the relay's OnChange: nil without the link.
func (l *syncLink) mediaChanged() func(media.SessionID) {
	if l == nil {
		return nil
	}
	return func(id media.SessionID) { l.node.Changed(hasync.KindMedia, hasync.MediaKey(id)) }
}

// registrationChanged is the SIP edge's OnRegistration: nil without the link.
func (l *syncLink) registrationChanged() func(string) {
	if l == nil {
		return nil
	}
	return func(key string) { l.node.Changed(hasync.KindRegistration, key) }
}

// callChanged is the SIP edge's OnCall: nil without the link.
func (l *syncLink) callChanged() func(string) {
	if l == nil {
		return nil
	}
	return func(id string) { l.node.Changed(hasync.KindDialog, id) }
}

// turnChanged is the TURN server's OnChange: nil without the link.
func (l *syncLink) turnChanged() func(string) {
	if l == nil {
		return nil
	}
	return func(key string) { l.node.Changed(hasync.KindTURN, key) }
}

// h323CallChanged is the H.323 edge's OnCall: nil without the link.
func (l *syncLink) h323CallChanged() func(string) {
	if l == nil {
		return nil
	}
	return func(id string) { l.node.Changed(hasync.KindH323Call, id) }
}

// registerH323 sends the H.323 edge's answered calls to the peer and keeps
// the peer's.
func (l *syncLink) registerH323(hs *h323proxy.Server) {
	if hs != nil {
		c := hasync.H323Calls{Server: hs}
		l.node.Register(hasync.KindH323Call, c, c)
	}
}

// registerTURN sends the TURN server's allocations to the peer and keeps
// the peer's as standby copies.
func (l *syncLink) registerTURN(ts *turn.Server) {
	if ts != nil {
		t := hasync.TURN{Server: ts}
		l.node.Register(hasync.KindTURN, t, t)
	}
}

// flowKey is the SIP edge's FlowSecret: nil (a random key) without the link.
func (l *syncLink) flowKey() []byte {
	if l == nil {
		return nil
	}
	return l.flowSecret
}

// service registers the kinds of state the node holds and returns the
// link's service: each kind is sent to the peer and the peer's is kept.
func (l *syncLink) service(relay *media.Relay, sip *sipedge.Server) *service {
	if relay != nil {
		m := hasync.Media{Relay: relay}
		l.node.Register(hasync.KindMedia, m, m)
	}
	if sip != nil {
		r := hasync.Registrations{Server: sip}
		l.node.Register(hasync.KindRegistration, r, r)
		c := hasync.Calls{Server: sip}
		l.node.Register(hasync.KindDialog, c, c)
	}
	return &service{name: "ha-sync", run: l.node.Run}
}

// A node with a sync link waits up to syncWaitLimit for the peer's
// snapshot before its VRRP speaker starts; a peer that is down (the first
// node of a pair to start) costs that wait once.
const (
	syncWaitLimit = 5 * time.Second
	syncWaitPoll  = 50 * time.Millisecond
)

// waitSynced returns true once synced reports true, false when limit
// passes first or ctx ends.
func waitSynced(ctx context.Context, synced func() bool, limit, poll time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for !synced() {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
	return true
}
