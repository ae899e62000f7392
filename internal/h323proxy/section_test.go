package h323proxy

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
)

func TestSection(t *testing.T) {
	ifs := Interfaces{External: "198.51.100.1", Public: "203.0.113.9", Internal: "10.0.0.1"}
	for _, tc := range []struct {
		name string
		s    Section
		path string // the field an error must name; "" for none
	}{
		{"disabled may be empty", Section{}, ""},
		{"enabled without gatekeeper is refused", Section{Enabled: true}, "h323.gatekeeper"},
		{"gatekeeper not ip:port", Section{Enabled: true, Gatekeeper: "gk.example"}, "h323.gatekeeper"},
		{"bad port", Section{Enabled: true, Gatekeeper: "10.0.0.5", RASPort: 70000}, "h323.ras_port"},
		{"keep-alive above ttl", Section{Enabled: true, Gatekeeper: "10.0.0.5", TimeToLive: field.Duration(10 * time.Second),
			KeepAliveInterval: field.Duration(20 * time.Second)}, "h323.keep_alive_interval"},
		{"bad override", Section{Enabled: true, Gatekeeper: "10.0.0.5", InternalAddress: "inside"}, "h323.internal_address"},
		{"wildcard external without public address", Section{Enabled: true, Gatekeeper: "10.0.0.5", ExternalAddress: "0.0.0.0"}, "h323.external_address"},
		{"gatekeeper_signal not ip:port", Section{Enabled: true, Gatekeeper: "10.0.0.5", GatekeeperSignal: "gk:x"}, "h323.gatekeeper_signal"},
		{"negative max_calls", Section{Enabled: true, Gatekeeper: "10.0.0.5", MaxCalls: -1}, "h323.max_calls"},
		{"neighbour without address", Section{Enabled: true, Gatekeeper: "10.0.0.5", Neighbours: []NeighbourSection{{Name: "p"}}}, "h323.neighbours[0].address"},
		{"neighbour not ip:port", Section{Enabled: true, Gatekeeper: "10.0.0.5", Neighbours: []NeighbourSection{{Address: "10.0.0.9"}, {Address: "gk.partner"}}}, "h323.neighbours[1].address"},
		{"ras_socket_buffer too small", Section{Enabled: true, Gatekeeper: "10.0.0.5", RASSocketBuffer: 100}, "h323.ras_socket_buffer"},
		{"ras_socket_buffer kernel default", Section{Enabled: true, Gatekeeper: "10.0.0.5", RASSocketBuffer: -1}, ""},
		{"minimal", Section{Enabled: true, Gatekeeper: "10.0.0.5"}, ""},
		{"media keep-alive configured", Section{Enabled: true, Gatekeeper: "10.0.0.5", MediaKeepAlivePayloadType: 96,
			MediaKeepAliveInterval: field.Duration(60 * time.Second)}, ""},
		{"media keep-alive payload type static", Section{Enabled: true, Gatekeeper: "10.0.0.5", MediaKeepAlivePayloadType: 8}, "h323.media_keep_alive_payload_type"},
		{"media keep-alive payload type above 127", Section{Enabled: true, Gatekeeper: "10.0.0.5", MediaKeepAlivePayloadType: 128}, "h323.media_keep_alive_payload_type"},
		{"media keep-alive interval above 60s", Section{Enabled: true, Gatekeeper: "10.0.0.5",
			MediaKeepAliveInterval: field.Duration(61 * time.Second)}, "h323.media_keep_alive_interval"},
		{"media keep-alive interval below 1s", Section{Enabled: true, Gatekeeper: "10.0.0.5",
			MediaKeepAliveInterval: field.Duration(500 * time.Millisecond)}, "h323.media_keep_alive_interval"},
		{"media keep-alive interval not whole seconds", Section{Enabled: true, Gatekeeper: "10.0.0.5",
			MediaKeepAliveInterval: field.Duration(1500 * time.Millisecond)}, "h323.media_keep_alive_interval"},
		{"h245 ports", Section{Enabled: true, Gatekeeper: "10.0.0.5", H245Ports: H245PortsSection{
			External: PortRangeSection{Min: 40000, Max: 40999}, Internal: PortRangeSection{Min: 41000, Max: 41000}}}, ""},
		{"h245 ports reversed", Section{Enabled: true, Gatekeeper: "10.0.0.5", H245Ports: H245PortsSection{
			Internal: PortRangeSection{Min: 41000, Max: 40000}}}, "h323.h245_ports.internal"},
		{"h245 ports without min", Section{Enabled: true, Gatekeeper: "10.0.0.5", H245Ports: H245PortsSection{
			External: PortRangeSection{Max: 40000}}}, "h323.h245_ports.external"},
		{"h245 ports beyond 65535", Section{Enabled: true, Gatekeeper: "10.0.0.5", H245Ports: H245PortsSection{
			External: PortRangeSection{Min: 65000, Max: 70000}}}, "h323.h245_ports.external"},
		{"h245 ports holding signal_port", Section{Enabled: true, Gatekeeper: "10.0.0.5", H245Ports: H245PortsSection{
			Internal: PortRangeSection{Min: 1700, Max: 1800}}}, "h323.h245_ports.internal"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkValidate(t, tc.s, ifs, tc.path) })
	}
	c, err := Section{Enabled: true, Gatekeeper: "10.0.0.5"}.Config(ifs)
	if err != nil {
		t.Fatal(err)
	}
	c, err = c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{ExternalRAS: netip.MustParseAddrPort("198.51.100.1:1719"), PublicAddress: netip.MustParseAddr("203.0.113.9"),
		InternalRAS: netip.MustParseAddrPort("10.0.0.1:0"), ExternalSignalPort: 1720, InternalSignal: netip.MustParseAddrPort("10.0.0.1:1720"),
		Gatekeeper: netip.MustParseAddrPort("10.0.0.5:1719"), OutsideGatekeeperID: "portico", TimeToLive: DefaultTimeToLive,
		KeepAliveInterval: DefaultKeepAliveInterval, Traversal: true, MediaTraversal: true, MaxRegistrations: DefaultMaxRegistrations,
		MaxPending: defaultMaxPending, RequestTimeout: defaultRequestTimeout,
		MediaKeepAliveInterval: DefaultMediaKeepAliveInterval, MediaKeepAlivePayloadType: DefaultMediaKeepAlivePayloadType,
		GatekeeperSignal: netip.MustParseAddrPort("10.0.0.5:1720"), SocketBuffer: DefaultSocketBuffer}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Config =\n%+v, want\n%+v", c, want)
	}
}

// TestSectionNeighbours: neighbours and open_b2b reach the Config, a
// neighbour's port defaulting to 1719.
func TestSectionNeighbours(t *testing.T) {
	ifs := Interfaces{External: "198.51.100.1", Internal: "10.0.0.1"}
	open := true
	c, err := Section{Enabled: true, Gatekeeper: "10.0.0.5", Federation: FederationSection{OpenB2B: &open, DNSServer: "127.0.0.53"},
		Neighbours: []NeighbourSection{{Name: "partner", Address: "203.0.113.7", Prefixes: []string{"0044"}, Domains: []string{"partner.example"}},
			{Address: "203.0.113.8:1819"}}}.Config(ifs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Neighbour{
		{Name: "partner", RAS: netip.MustParseAddrPort("203.0.113.7:1719"), Prefixes: []string{"0044"}, Domains: []string{"partner.example"}},
		{RAS: netip.MustParseAddrPort("203.0.113.8:1819")},
	}
	if c.DNSServer != netip.MustParseAddrPort("127.0.0.53:53") {
		t.Errorf("DNSServer = %v, want 127.0.0.53:53", c.DNSServer)
	}
	if !reflect.DeepEqual(c.Neighbours, want) || !c.OpenB2B {
		t.Errorf("Neighbours = %+v, OpenB2B %v; want %+v, true", c.Neighbours, c.OpenB2B, want)
	}
}

// TestSectionZones: zones and keep-alive rules reach the Config with
// their defaults; contradictions are refused with the field named.
func TestSectionZones(t *testing.T) {
	ifs := Interfaces{External: "198.51.100.1", Internal: "10.0.0.1"}
	base := func(mod func(*Section)) Section {
		s := Section{Enabled: true, Gatekeeper: "10.0.0.5",
			Zones: []ZoneSection{{Name: "edge-a", Server: "203.0.113.7", Aliases: []string{"portico-b"}, Prefixes: []string{"44"}}}}
		if mod != nil {
			mod(&s)
		}
		return s
	}
	code := 70000
	for _, tc := range []struct {
		name string
		s    Section
		path string
	}{
		{"valid", base(nil), ""},
		{"no name", base(func(s *Section) { s.Zones[0].Name = "" }), "h323.zones[0].name"},
		{"name repeated", base(func(s *Section) {
			s.Zones = append(s.Zones, ZoneSection{Name: "edge-a", Server: "203.0.113.8", Aliases: []string{"x"}, Prefixes: []string{"55"}})
		}), "h323.zones[1].name"},
		{"no server", base(func(s *Section) { s.Zones[0].Server = "" }), "h323.zones[0].server"},
		{"server by name", base(func(s *Section) { s.Zones[0].Server = "edge.example" }), ""},
		{"server by name and port", base(func(s *Section) { s.Zones[0].Server = "Edge.Example.:1819" }), ""},
		{"server not host[:port]", base(func(s *Section) { s.Zones[0].Server = "edge example" }), "h323.zones[0].server"},
		{"server label too long", base(func(s *Section) { s.Zones[0].Server = strings.Repeat("a", 64) + ".example" }), "h323.zones[0].server"},
		{"server port not a port", base(func(s *Section) { s.Zones[0].Server = "edge.example:0" }), "h323.zones[0].server"},
		{"server is the inside gatekeeper", base(func(s *Section) { s.Zones[0].Server = "10.0.0.5:1719" }), "h323.zones[0].server"},
		{"server is Portico", base(func(s *Section) { s.Zones[0].Server = "198.51.100.1:1719" }), "h323.zones[0].server"},
		{"no aliases", base(func(s *Section) { s.Zones[0].Aliases = nil }), "h323.zones[0].aliases"},
		{"serves nothing", base(func(s *Section) { s.Zones[0].Prefixes = nil }), "h323.zones[0].prefixes"},
		{"empty prefix", base(func(s *Section) { s.Zones[0].Prefixes = []string{""} }), "h323.zones[0].prefixes"},
		{"prefix of a neighbour too", base(func(s *Section) {
			s.Neighbours = []NeighbourSection{{Address: "203.0.113.9", Prefixes: []string{"44"}}}
		}), "h323.zones[0].prefixes"},
		{"domain of another zone too", base(func(s *Section) {
			s.Zones[0].Domains = []string{"b.example"}
			s.Zones = append(s.Zones, ZoneSection{Name: "c", Server: "203.0.113.8", Aliases: []string{"x"}, Domains: []string{"B.example"}})
		}), "h323.zones[1].domains"},
		{"time_to_live below 1s", base(func(s *Section) { s.Zones[0].TimeToLive = field.Duration(time.Millisecond) }), "h323.zones[0].time_to_live"},
		{"keep-alive rule matching nothing", base(func(s *Section) { s.KeepAlives = []KeepAliveSection{{Signalling: "tpkt"}} }), "h323.keep_alives[0].product"},
		{"unknown signalling method", base(func(s *Section) { s.KeepAlives = []KeepAliveSection{{Product: "x", Signalling: "ping"}} }), "h323.keep_alives[0].signalling"},
		{"facility on h245", base(func(s *Section) { s.KeepAlives = []KeepAliveSection{{Product: "x", H245: "facility"}} }), "h323.keep_alives[0].h245"},
		{"manufacturer out of range", base(func(s *Section) { s.KeepAlives = []KeepAliveSection{{Manufacturer: &code}} }), "h323.keep_alives[0].manufacturer"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkValidate(t, tc.s, ifs, tc.path) })
	}
	c, err := base(func(s *Section) {
		s.KeepAlives = []KeepAliveSection{{Product: "hdx", Signalling: "facility", H245: "none"}}
	}).Config(ifs)
	if err != nil {
		t.Fatal(err)
	}
	c, err = c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	wantZ := []Zone{{Name: "edge-a", Server: netip.MustParseAddrPort("203.0.113.7:1719"), Aliases: []string{"portico-b"}, Prefixes: []string{"44"},
		TimeToLive: defaultZoneTTL, RetryMax: defaultZoneRetryMax}}
	if !reflect.DeepEqual(c.Zones, wantZ) {
		t.Errorf("Zones = %+v, want %+v", c.Zones, wantZ)
	}
	wantK := []KeepAliveRule{{Product: "hdx", Signalling: KeepAliveFacility, H245: KeepAliveNone}}
	if !reflect.DeepEqual(c.KeepAlives, wantK) {
		t.Errorf("KeepAlives = %+v, want %+v", c.KeepAlives, wantK)
	}
}

// checkValidate asserts that s validates, or (path not empty) fails with
// an error naming path.
func checkValidate(t *testing.T, s Section, ifs Interfaces, path string) {
	t.Helper()
	err := s.Validate(ifs)
	if path == "" {
		if err != nil {
			t.Fatalf("Validate = %v", err)
		}
		return
	}
	es, ok := field.As(err)
	if !ok || !strings.Contains(es.Error(), path) {
		t.Fatalf("Validate = %v, want an error at %s", err, path)
	}
}

// TestSectionOpenB2BFollowsSIP: h323.federation.open_b2b unset takes
// sip.federation.open_b2b; set either way, the h323 one wins.
func TestSectionOpenB2BFollowsSIP(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name      string
		h323      *bool
		sip, want bool
	}{
		{"unset follows sip on", nil, true, true},
		{"unset follows sip off", nil, false, false},
		{"h323 off wins over sip on", &no, true, false},
		{"h323 on wins over sip off", &yes, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ifs := Interfaces{External: "198.51.100.1", Internal: "10.0.0.1", SIPOpenB2B: tc.sip}
			c, err := Section{Enabled: true, Gatekeeper: "10.0.0.5", Federation: FederationSection{OpenB2B: tc.h323}}.Config(ifs)
			if err != nil {
				t.Fatal(err)
			}
			if c.OpenB2B != tc.want {
				t.Errorf("OpenB2B = %v, want %v", c.OpenB2B, tc.want)
			}
		})
	}
}
