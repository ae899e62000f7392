package sipedge

import (
	"testing"
	"time"

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

func TestSectionOverload(t *testing.T) {
	s := Section{Enabled: true,
		Listeners:   []Listener{{Interface: External, Transport: "udp", Address: "127.0.0.1:5060"}, {Interface: Internal, Transport: "udp", Address: "127.0.0.1:5070"}},
		CallServers: []CallServer{{Address: "127.0.0.1:5080"}},
	}
	c, err := s.Config("").withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Overload{MaxInFlight: DefaultOverloadMaxInFlight, MaxQueued: DefaultOverloadMaxQueued, MaxWait: DefaultOverloadMaxWait, RetryAfter: DefaultOverloadRetryAfter}
	if c.Overload != want {
		t.Errorf("default overload = %+v, want %+v", c.Overload, want)
	}
	s.Overload = OverloadBounds{MaxInFlight: 10, MaxWait: field.Duration(time.Second)}
	if c, _ := s.Config("").withDefaults(); c.Overload.MaxInFlight != 10 || c.Overload.MaxWait != time.Second || c.Overload.MaxQueued != DefaultOverloadMaxQueued {
		t.Errorf("overload = %+v, want max_in_flight 10, max_wait 1s, default max_queued", c.Overload)
	}
	s.Overload = OverloadBounds{MaxQueued: -1}
	es, ok := field.As(s.Validate())
	if !ok || es[0].Path != "sip.overload.max_queued" {
		t.Errorf("Validate = %v, want an error at sip.overload.max_queued", es)
	}
}
