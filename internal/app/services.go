package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/logging"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/media/ng"
)

// service is one thing the app runs under its errgroup.
type service struct {
	name    string
	run     func(ctx context.Context) error
	running atomic.Bool
	err     atomic.Pointer[string]
}

// restartSections change only at the next start: the relay keeps the ports
// of calls in progress, and the log file stays open.
var restartSections = map[string]bool{"media": true}

// buildServices makes every enabled service from cfg. It does no I/O.
func buildServices(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) ([]*service, error) {
	var out []*service
	if cfg.Media.Enabled {
		mc, err := mediaConfig(cfg)
		if err != nil {
			return nil, err
		}
		relay, err := media.New(mc, media.Deps{Logger: logging.Component(log, "media"), Registerer: reg, OnTimeout: func(t media.Timeout) {
			log.Warn("media inactivity", "component", "media", "session", uint64(t.ID), "label", t.Label, "silent", t.Silent)
		}})
		if err != nil {
			return nil, fmt.Errorf("media: %w", err)
		}
		out = append(out, &service{name: "media", run: relay.Run})
		if cfg.Media.NGListen != "" {
			srv, err := ng.New(ng.Config{Listen: cfg.Media.NGListen, Interfaces: [2]string{"external", "internal"}}, ng.Deps{Relay: relay, Logger: logging.Component(log, "media-ng")})
			if err != nil {
				return nil, fmt.Errorf("media.ng_listen: %w", err)
			}
			out = append(out, &service{name: "media-ng", run: srv.Run})
		}
	}
	return out, nil
}

func mediaConfig(cfg *config.Config) (media.Config, error) {
	ext, err := netip.ParseAddr(cfg.Interfaces.External.Address)
	if err != nil {
		return media.Config{}, fmt.Errorf("interfaces.external.address: %w", err)
	}
	in, err := netip.ParseAddr(cfg.Interfaces.Internal.Address)
	if err != nil {
		return media.Config{}, fmt.Errorf("interfaces.internal.address: %w", err)
	}
	extIf := media.InterfaceConfig{Addr: ext, PortMin: cfg.Media.External.Min, PortMax: cfg.Media.External.Max}
	if pa := cfg.Interfaces.External.PublicAddress; pa != "" {
		extIf.Advertised, _ = netip.ParseAddr(pa)
	}
	latch := media.LatchStrict
	if cfg.Media.NATLatching == nil || *cfg.Media.NATLatching {
		latch = media.LatchNAT
	}
	return media.Config{
		Interfaces: map[string]media.InterfaceConfig{
			"external": extIf,
			"internal": {Addr: in, PortMin: cfg.Media.Internal.Min, PortMax: cfg.Media.Internal.Max},
		},
		SocketBuffer:      cfg.Media.SocketBufferKB << 10,
		Latching:          latch,
		InactivityTimeout: cfg.Media.InactivityTimeout.D(),
	}, nil
}
