package app

import (
	"context"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/accessproxy"
	"github.com/portico-edge/portico/internal/certs"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/turn"
)

// TestServiceErrorsKeepTheirPath: what a service's validation reports
// reaches the user with its own field path and whole reason (they used to
// be recovered by splitting the message, which named "accessproxy" or
// "media" instead of the field).
func TestServiceErrorsKeepTheirPath(t *testing.T) {
	_, apErr := accessproxy.New(accessproxy.Config{Routes: []accessproxy.Route{{Name: "r", Action: "ftp"}}}, accessproxy.Deps{Certs: certs.NewStore(certs.Options{})})
	_, mediaErr := media.New(media.Config{}, media.Deps{})
	_, turnErr := turn.New(turn.Config{Listen: turn.Listen{UDP: []string{"nowhere"}}}, turn.Deps{})
	tests := []struct {
		name   string
		err    error
		path   string
		reason string // "" : any
	}{
		{"access proxy", apErr, "access_proxy.routes[0].action", ""},
		{"media", mediaErr, "media.interfaces", ""},
		{"turn", turnErr, "turn.listen.udp[0]", ""},
		{"sip, punctuation kept", sipedge.ConfigError{{Path: "sip.guest.vmr_ranges[0]", Reason: `"1-2; 3" is not a range: want N-M`}}, "sip.guest.vmr_ranges[0]", `"1-2; 3" is not a range: want N-M`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("the service accepted a bad section")
			}
			es, ok := config.AsErrors(asConfigErrors(tc.err))
			if !ok || len(es) == 0 || es[0].Path != tc.path || (tc.reason != "" && es[0].Reason != tc.reason) {
				t.Errorf("%v became %+v, want path %s", tc.err, es, tc.path)
			}
		})
	}
}

// TestGuardErrorsKeepTheirPath: the guard section's errors reach the user
// with their field path, line and column like the rest of the document.
func TestGuardErrorsKeepTheirPath(t *testing.T) {
	doc := []byte("version: 1\nguard:\n  ipv6_prefix: 200\n")
	es, ok := config.AsErrors(Validate(context.Background(), doc))
	if !ok || len(es) == 0 || !strings.HasPrefix(es[0].Path, "guard.") {
		t.Errorf("Validate = %+v, want an error at a guard field", es)
	}
}
