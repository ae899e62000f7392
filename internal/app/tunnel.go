package app

import (
	"context"
	"path/filepath"
	"reflect"
	"time"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/logging"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/tunnel"
)

// tunnelEnd is the running tunnel server or client.
type tunnelEnd interface {
	Run(ctx context.Context) error
	Stats() tunnel.Stats
}

// tunnelStateFile keeps the tunnel's key, certificate, pins and tokens.
const tunnelStateFile = "tunnel-state.json"

func (b *built) buildTunnel(cfg *config.Config, d serviceDeps) error {
	var state tunnel.StateStore = &tunnel.MemState{}
	if d.dataDir != "" {
		state = tunnel.FileState{Path: filepath.Join(d.dataDir, tunnelStateFile)}
	}
	deps := tunnel.Deps{Logger: logging.Component(d.log, "tunnel"), State: state, Registerer: d.reg, OnState: tunnelEvents(d.events, cfg.Tunnel.Role),
		OnEvent: tunnelNotes(d.events)}
	tc := cfg.Tunnel.Config()
	var err error
	if cfg.Tunnel.Role == tunnel.RoleServer {
		b.tunnel, err = tunnel.NewServer(tc, deps)
	} else {
		b.tunnel, err = tunnel.NewClient(tc, deps)
	}
	if err != nil {
		return asConfigErrors(err)
	}
	boot := cfg.Tunnel
	b.reloads = append(b.reloads, reload{"tunnel", func(next *config.Config) ([]string, error) {
		if reflect.DeepEqual(boot, next.Tunnel) {
			return nil, nil
		}
		return []string{"tunnel"}, nil
	}})
	return nil
}

// tunnelNotes records the tunnel's other notable changes (a service
// moving to another client, a stale server pin) in the event history.
func tunnelNotes(record func(store.Event)) func(severity, msg string) {
	if record == nil {
		return nil
	}
	return func(severity, msg string) {
		record(store.Event{Time: time.Now().UTC(), Severity: severity, Component: "tunnel", Message: msg})
	}
}

// tunnelEvents records every state change of the tunnel in the event
// history.
func tunnelEvents(record func(store.Event), role string) func(string) {
	if record == nil {
		return nil
	}
	return func(state string) {
		sev := "info"
		if state != "up" {
			sev = "warning"
		}
		record(store.Event{Time: time.Now().UTC(), Severity: sev, Component: "tunnel", Message: "tunnel " + role + " " + state})
	}
}
