package ha

import (
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
)

func TestSectionValidate(t *testing.T) {
	good := func() Section {
		return Section{Enabled: true, Interface: "eth0", Groups: []Group{{VRID: 51, Addresses: []string{"192.0.2.100"},
			Peers: []string{"192.0.2.1", "192.0.2.2"}, Priorities: map[string]int{"a": 200}}}}
	}
	tests := []struct {
		name string
		mod  func(s *Section)
		path string
	}{
		{"no interface", func(s *Section) { s.Interface = "" }, "ha.interface"},
		{"no groups", func(s *Section) { s.Groups = nil }, "ha.groups"},
		{"vrid 0", func(s *Section) { s.Groups[0].VRID = 0 }, "ha.groups[0].vrid"},
		{"vrid twice", func(s *Section) { s.Groups = append(s.Groups, s.Groups[0]) }, "ha.groups[1].vrid"},
		{"no addresses", func(s *Section) { s.Groups[0].Addresses = nil }, "ha.groups[0].addresses"},
		{"bad address", func(s *Section) { s.Groups[0].Addresses = []string{"x"} }, "ha.groups[0].addresses[0]"},
		{"mixed families", func(s *Section) { s.Groups[0].Addresses = []string{"192.0.2.100", "2001:db8::1"} }, "ha.groups[0].addresses[1]"},
		{"no peers", func(s *Section) { s.Groups[0].Peers = nil }, "ha.groups[0].peers"},
		{"peer of another family", func(s *Section) { s.Groups[0].Peers = []string{"fe80::1"} }, "ha.groups[0].peers[0]"},
		{"multicast address", func(s *Section) { s.Groups[0].Addresses = []string{"224.0.0.18"} }, "ha.groups[0].addresses[0]"},
		{"ipv6 peer not link-local", func(s *Section) {
			s.Groups[0].Addresses, s.Groups[0].Peers = []string{"2001:db8::100"}, []string{"fe80::1", "2001:db8::2"}
		}, "ha.groups[0].peers[1]"},
		{"ipv6 peer with a zone", func(s *Section) {
			s.Groups[0].Addresses, s.Groups[0].Peers = []string{"2001:db8::100"}, []string{"fe80::1%eth0", "fe80::2"}
		}, "ha.groups[0].peers[0]"},
		{"ipv6 group, ipv4 peer", func(s *Section) {
			s.Groups[0].Addresses, s.Groups[0].Peers = []string{"2001:db8::100"}, []string{"fe80::1", "192.0.2.2"}
		}, "ha.groups[0].peers[1]"},
		{"interval short", func(s *Section) { s.Groups[0].Interval = field.Duration(50 * time.Millisecond) }, "ha.groups[0].interval"},
		{"unknown node", func(s *Section) { s.Groups[0].Priorities = map[string]int{"z": 100} }, "ha.groups[0].priorities.z"},
		{"priority", func(s *Section) { s.Groups[0].Priorities = map[string]int{"a": 256} }, "ha.groups[0].priorities.a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.mod(&s)
			es, ok := field.As(s.Validate([]string{"a", "b"}))
			if !ok || len(es) != 1 || es[0].Path != tc.path {
				t.Errorf("got %v, want one error at %s", es, tc.path)
			}
		})
	}
	// An IPv6 group: global and link-local VIPs, link-local peers.
	s := good()
	s.Groups = append(s.Groups, Group{VRID: 52, Addresses: []string{"2001:db8::100", "fe80::100"}, Peers: []string{"fe80::1", "fe80::2"}})
	if err := s.Validate([]string{"a", "b"}); err != nil {
		t.Fatalf("ipv6 group refused: %v", err)
	}
	if rc, err := s.Groups[1].RouterConfig("a", netip.MustParseAddr("fe80::1"), 100); err != nil || !rc.IPv6() {
		t.Errorf("ipv6 router: %+v %v", rc, err)
	}
	s = good()
	if err := s.Validate([]string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	self := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		node string
		want uint8
	}{{"a", 200}, {"b", 100}} {
		rc, err := s.Groups[0].RouterConfig(tc.node, self, 100)
		if err != nil || rc.Priority != tc.want || rc.Interval != DefaultInterval || len(rc.Peers) != 2 {
			t.Errorf("node %s: %+v %v", tc.node, rc, err)
		}
	}
}
