package config

import (
	"strings"
	"testing"
)

// TestEveryProblemAtOnce: unknown fields, wrong types and invalid values are
// reported together, each with its field path, line and column.
func TestEveryProblemAtOnce(t *testing.T) {
	doc := "version: 1\n" +
		"management:\n" +
		"  max_login_failures: ten\n" + // line 3: type error
		"  listen: 127.0.0.1:70000\n" + // line 4: invalid value
		"log:\n" +
		"  levle: info\n" + // line 6: unknown field
		"node:\n" +
		"  drain_timeout: soon\n" // line 8: type error in a text value
	_, err := Parse([]byte(doc))
	es, ok := AsErrors(err)
	if !ok {
		t.Fatalf("Parse = %v, want config.Errors", err)
	}
	want := map[string]int{
		"management.max_login_failures": 3,
		"management.listen":             4,
		"log.levle":                     6,
		"node.drain_timeout":            8,
	}
	got := map[string]int{}
	for _, e := range es {
		got[e.Path] = e.Line
		if e.Path == "" {
			t.Errorf("an error without a field path: %v", e)
		}
	}
	for p, line := range want {
		if l, ok := got[p]; !ok || l != line {
			t.Errorf("%s: reported at line %d (present %v), want line %d; all: %v", p, l, ok, line, err)
		}
	}
	if !strings.Contains(err.Error(), `"ten" is not a whole number`) {
		t.Errorf("type error reason: %v", err)
	}
}

// TestPortConflicts: two sockets on the same transport, overlapping address
// and same port are refused; different transports or addresses are not.
func TestPortConflicts(t *testing.T) {
	base := "version: 1\nmanagement:\n  listen: 127.0.0.1:9443\n"
	tests := []struct {
		name string
		doc  string
		path string // "" means valid
		want string
	}{
		{"turn tcp on the management port", base + "turn:\n  enabled: true\n  tcp: [127.0.0.1:9443]\n", "turn.tcp[0]", "management.listen"},
		{"wildcard overlaps everything", base + "turn:\n  enabled: true\n  tcp: [0.0.0.0:9443]\n", "turn.tcp[0]", "management.listen"},
		{"udp and tcp on one port are fine", base + "turn:\n  enabled: true\n  udp: [127.0.0.1:9443]\n", "", ""},
		{"tunnel service on the management port", base + "tunnel:\n  enabled: true\n  role: server\n  listen: 127.0.0.1:4443\n  services:\n  - {name: web, proto: tcp, listen: 127.0.0.1:9443}\n", "tunnel.services[0].listen", "management.listen"},
		{"tunnel server on turn's udp port", base + "turn:\n  enabled: true\n  udp: [127.0.0.1:3478]\ntunnel:\n  enabled: true\n  role: server\n  listen: 127.0.0.1:3478\n", "tunnel.listen", "turn.udp[0]"},
		{"other address is fine", base + "turn:\n  enabled: true\n  tcp: [127.0.0.2:9443]\n", "", ""},
		{"disabled service binds nothing", base + "turn:\n  enabled: false\n  tcp: [127.0.0.1:9443]\n", "", ""},
		{"access proxy on the management port", base + "access_proxy:\n  enabled: true\n  listen: 127.0.0.1:9443\n", "access_proxy.listen", "management.listen"},
		{"ng port inside the relay range", base + "media:\n  enabled: true\n  ng_listen: 127.0.0.1:40010\n", "media.ng_listen", "media.external"},
		{"turn relay inside the media range", base + "media:\n  enabled: true\nturn:\n  enabled: true\n  udp: [127.0.0.1:3478]\n  relay: {port_min: 44000, port_max: 44100}\n", "turn.relay", "media.external"},
		{"same list twice", base + "turn:\n  enabled: true\n  udp: [127.0.0.1:3478, 127.0.0.1:3478]\n", "turn.udp[1]", "turn.udp[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if tc.path == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			es, ok := AsErrors(err)
			if !ok {
				t.Fatalf("accepted (err %v)", err)
			}
			for _, e := range es {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.want) && e.Line > 0 {
					return
				}
			}
			t.Errorf("no error at %s naming %s: %v", tc.path, tc.want, err)
		})
	}
}

// TestTunnelSection: the tunnel section's field errors reach the document.
func TestTunnelSection(t *testing.T) {
	_, err := Parse([]byte("version: 1\ntunnel:\n  enabled: true\n"))
	es, ok := AsErrors(err)
	if !ok || es[0].Path != "tunnel.role" {
		t.Fatalf("Parse = %v", err)
	}
	if _, err := Parse([]byte("version: 1\ntunnel:\n  enabled: true\n  role: client\n  server: 192.0.2.1:4443\n")); err != nil {
		t.Fatalf("valid client refused: %v", err)
	}
}

// TestSNMPSection: the snmp section's field errors reach the document with
// their paths, and its listener joins the overlap check.
func TestSNMPSection(t *testing.T) {
	for _, tc := range []struct {
		name, doc, path string
	}{
		{"nothing to query with", "snmp:\n  enabled: true\n", "snmp"},
		{"community without networks", "snmp:\n  communities:\n    - community: ro\n", "snmp.communities[0].networks"},
		{"sha1 not allowed", "snmp:\n  users:\n    - {name: m, auth_protocol: sha1, auth_key: 12345678, priv_key: 12345678}\n", "snmp.users[0].auth_protocol"},
		{"v3 receiver without a user", "snmp:\n  traps:\n    - {address: \"127.0.0.1:162\", version: v3, user: nobody}\n", "snmp.traps[0].user"},
		{"port taken by the ng listener", "snmp:\n  enabled: true\n  listen: [\"127.0.0.1:2223\"]\n  communities: [{community: ro, networks: [127.0.0.0/8]}]\nmedia:\n  enabled: true\n  ng_listen: \"127.0.0.1:2223\"\n", "snmp.listen[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("version: 1\n" + tc.doc))
			es, ok := AsErrors(err)
			if !ok || es[0].Path != tc.path {
				t.Fatalf("Parse = %v, want an error at %s", err, tc.path)
			}
		})
	}
	if _, err := Parse([]byte("version: 1\nsnmp:\n  enabled: true\n  communities: [{community: ro, networks: [10.0.0.0/8]}]\n  users: [{name: m, auth_key: 12345678, priv_key: 12345678}]\n")); err != nil {
		t.Errorf("valid section refused: %v", err)
	}
}

// TestH323Section: an enabled h323 section with nothing to proxy is
// refused; its sockets join the overlap check.
func TestH323Section(t *testing.T) {
	for _, tc := range []struct {
		name, doc, path string
	}{
		{"no gatekeeper", "h323:\n  enabled: true\n", "h323.gatekeeper"},
		{"ras port taken by sip", "h323:\n  enabled: true\n  gatekeeper: 10.0.0.5\n  ras_port: 5060\nmedia:\n  enabled: true\nsip:\n  enabled: true\n  listeners:\n    - {interface: external, transport: udp, address: \"127.0.0.1:5060\"}\n  call_servers:\n    - {address: \"10.0.0.6:5060\"}\n", "h323.ras_port"},
		{"h245 ports over the management port", "h323:\n  enabled: true\n  gatekeeper: 10.0.0.5\n  h245_ports: {external: {min: 9400, max: 9500}}\n", "h323.h245_ports.external"},
		{"h245 dial service without a tunnel", "h323:\n  enabled: true\n  gatekeeper: 10.0.0.5\n  h245_tunnel_service: h245\n", "h323.h245_tunnel_service"},
		{"h245 dial service not listed", "h323:\n  enabled: true\n  gatekeeper: 10.0.0.5\n  h245_tunnel_service: h245\ntunnel:\n  enabled: true\n  role: server\n  listen: 127.0.0.1:4443\n", "h323.h245_tunnel_service"},
		{"h245 dial service with a target", "h323:\n  enabled: true\n  gatekeeper: 10.0.0.5\n  h245_tunnel_service: h245\ntunnel:\n  enabled: true\n  role: server\n  listen: 127.0.0.1:4443\n  services:\n  - {name: h245, proto: tcp, target: 10.0.0.9:1}\n", "h323.h245_tunnel_service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("version: 1\n" + tc.doc))
			es, ok := AsErrors(err)
			if !ok || !strings.Contains(es.Error(), tc.path) {
				t.Errorf("Parse = %v, want an error at %s", err, tc.path)
			}
		})
	}
	if _, err := Parse([]byte("version: 1\nh323:\n  enabled: true\n  gatekeeper: 10.0.0.5:1719\n")); err != nil {
		t.Errorf("minimal h323 section refused: %v", err)
	}
	dial := "version: 1\nh323:\n  enabled: true\n  gatekeeper: 10.0.0.5:1719\n  h245_ports: {external: {min: 40000, max: 40999}, internal: {min: 41000, max: 41999}}\n" +
		"  h245_tunnel_service: h245\ntunnel:\n  enabled: true\n  role: server\n  listen: 127.0.0.1:4443\n  services:\n  - {name: h245, proto: tcp}\n"
	if _, err := Parse([]byte(dial)); err != nil {
		t.Errorf("h323 section with h245 ports and a dial service refused: %v", err)
	}
}
