package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/accessproxy"
	"github.com/portico-edge/portico/internal/certs"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/turn"
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
	if err := checkBuild(cfg, d); err != nil {
		return nil, err
	}
	return cfg, nil
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

// asConfigErrors turns a service's validation error into field errors.
func asConfigErrors(err error) error {
	if _, ok := config.AsErrors(err); ok {
		return err
	}
	var es config.Errors
	var se sipedge.ConfigError
	var te turn.Errors
	switch {
	case errors.As(err, &se):
		for _, f := range se {
			es = append(es, config.FieldError{Path: f.Path, Reason: f.Reason})
		}
	case errors.As(err, &te):
		for _, f := range te {
			es = append(es, config.FieldError{Path: f.Path, Reason: f.Reason})
		}
	case errors.Is(err, accessproxy.ErrInvalidConfig):
		// "accessproxy: invalid config: access_proxy.routes[0].action: reason"
		msg := strings.TrimPrefix(err.Error(), accessproxy.ErrInvalidConfig.Error()+": ")
		path, reason, ok := strings.Cut(msg, ": ")
		if !ok || strings.Contains(path, " ") {
			path, reason = "access_proxy", msg
		}
		es = append(es, config.FieldError{Path: path, Reason: reason})
	default: // "media.ng_listen: reason"
		path, reason, ok := strings.Cut(err.Error(), ": ")
		if !ok || strings.Contains(path, " ") {
			path, reason = "", err.Error()
		}
		es = append(es, config.FieldError{Path: path, Reason: reason})
	}
	return es
}
