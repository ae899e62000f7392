package app

import (
	"context"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/certs"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/config/field"
)

// Validate is the check every path shares (portico config validate, POST
// /api/v1/config/validate, PUT /api/v1/config, boot and SIGHUP): it parses
// doc and builds every enabled service exactly as a live load does, without
// binding anything, then closes what it built. The error, if any, is a
// config.Errors naming every field at fault.
//
// Validate on its own (the CLI) knows no stored certificates, so a
// certificate name is checked only by a running node.
func Validate(ctx context.Context, doc []byte) error {
	_, err := validate(doc, serviceDeps{
		log: slog.New(slog.DiscardHandler), certs: certs.NewStore(certs.Options{}), env: os.Getenv,
	})
	return err
}

// validate parses doc and checks that its services build; see Validate.
func validate(doc []byte, d serviceDeps) (*config.Config, error) {
	cfg, err := config.Parse(doc)
	if err != nil {
		return nil, err
	}
	if d.node == "" && len(cfg.Nodes) > 0 {
		// No node at hand: the document must build for each of its nodes.
		for _, p := range cfg.Nodes {
			if _, err := validate(doc, d.forNode(p.Name)); err != nil {
				return nil, err
			}
		}
		return cfg, nil
	}
	if len(cfg.Nodes) == 0 && !d.nodeFlag {
		d.node = "" // a single node's document names it
	}
	if cfg, err = cfg.ForNode(d.node); err != nil {
		es, _ := config.AsErrors(err)
		return nil, config.Locate(doc, es)
	}
	if err := checkBuild(cfg, d); err != nil {
		es, _ := config.AsErrors(err)
		return nil, config.Locate(doc, es)
	}
	return cfg, nil
}

func (d serviceDeps) forNode(name string) serviceDeps {
	d.node = name
	return d
}

// checkBuild builds cfg's services with a throwaway metrics registry and
// closes them.
func checkBuild(cfg *config.Config, d serviceDeps) error {
	b, err := buildServices(cfg, d.withRegisterer(prometheus.NewRegistry()))
	if err != nil {
		return asConfigErrors(err)
	}
	b.close()
	return nil
}

// asConfigErrors returns the field errors a service reported (each
// service validates its section with the shared field.Error type); any
// other error becomes one error without a path.
func asConfigErrors(err error) error {
	if es, ok := field.As(err); ok {
		return es
	}
	return config.Errors{{Reason: err.Error()}}
}

// runDeps are the deps a running node validates a new document with:
// serviceDeps, and whether --node-name named the node.
func (a *App) runDeps() serviceDeps {
	d := a.serviceDeps()
	d.nodeFlag = a.opts.NodeName != ""
	return d
}
