package sipedge

import (
	"testing"

	"github.com/portico-edge/portico/internal/config/field"
)

func TestSection(t *testing.T) {
	good := Section{Enabled: true,
		Listeners:   []Listener{{Interface: External, Transport: "udp", Address: "127.0.0.1:5060"}, {Interface: Internal, Transport: "udp", Address: "127.0.0.1:5070"}},
		CallServers: []CallServer{{Address: "127.0.0.1:5080"}},
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good section refused: %v", err)
	}
	if err := (Section{}).Validate(); err != nil {
		t.Errorf("a disabled, empty section refused: %v", err)
	}
	bad := good
	bad.Listeners = []Listener{good.Listeners[0], {Interface: "dmz", Transport: "udp", Address: "127.0.0.1:5070"}}
	es, ok := field.As(bad.Validate())
	if !ok || es[0].Path != "sip.listeners[1].interface" {
		t.Errorf("Validate = %v, want an error at sip.listeners[1].interface", es)
	}
	if c := good.Config("198.51.100.7"); c.ExternalHost != "198.51.100.7" || len(c.Listeners) != 2 {
		t.Errorf("Config = external host %q, %d listeners", c.ExternalHost, len(c.Listeners))
	}
}
