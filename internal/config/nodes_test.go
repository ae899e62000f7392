package config

import (
	"fmt"
	"strings"
	"testing"
)

const clusterDoc = `version: 1
node: {name: a}
nodes:
  - name: a
    interfaces: {external: {address: 192.0.2.1}}
    management_listen: 127.0.0.1:9441
    priority: 200
  - name: b
    interfaces: {external: {address: 192.0.2.2, public_address: 198.51.100.2}}
interfaces:
  external: {address: 192.0.2.10}
  internal: {address: 10.0.0.10, networks: [10.0.0.0/8]}
management: {listen: 127.0.0.1:9443}
`

func TestForNode(t *testing.T) {
	cfg, err := Parse([]byte(clusterDoc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, node              string
		ext, pub, mgmt, intAddr string
		prio                    int
	}{
		{"document's own name", "", "192.0.2.1", "", "127.0.0.1:9441", "10.0.0.10", 200},
		{"named node", "b", "192.0.2.2", "198.51.100.2", "127.0.0.1:9443", "10.0.0.10", 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cfg.ForNode(tc.node)
			if err != nil {
				t.Fatal(err)
			}
			self, _ := c.Part(c.Node.Name)
			got := []any{c.Interfaces.External.Address, c.Interfaces.External.PublicAddress, c.Management.Listen, c.Interfaces.Internal.Address, self.EffectivePriority()}
			want := []any{tc.ext, tc.pub, tc.mgmt, tc.intAddr, tc.prio}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("field %d = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
	if cfg.Interfaces.External.Address != "192.0.2.10" {
		t.Error("ForNode changed the shared document")
	}
	if _, err := cfg.ForNode("c"); err == nil || !strings.Contains(err.Error(), `"c", is not one of the nodes (a, b)`) {
		t.Errorf("unknown node: %v", err)
	}
	// A document without nodes is every node's whole configuration.
	single, err := Parse([]byte("version: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := single.ForNode("x"); err != nil || c.Node.Name != "x" {
		t.Errorf("single node: %v %v", c, err)
	}
}

func TestNodesRefused(t *testing.T) {
	tests := []struct {
		name, nodes, path, want string
	}{
		{"no name", "  - priority: 10\n", "nodes[0].name", "must not be empty"},
		{"twice", "  - name: a\n  - name: a\n", "nodes[1].name", "named twice"},
		{"colon", "  - name: 'a:b'\n", "nodes[0].name", "must not hold"},
		{"priority", "  - name: a\n    priority: 255\n", "nodes[0].priority", "outside 1..254"},
		{"address", "  - name: a\n    interfaces: {internal: {address: nope}}\n", "nodes[0].interfaces.internal.address", "not an IP address"},
		{"public inside", "  - name: a\n    interfaces: {internal: {public_address: 192.0.2.1}}\n", "nodes[0].interfaces.internal.public_address", "only the external"},
		{"listen", "  - name: a\n    management_listen: nope\n", "nodes[0].management_listen", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("version: 1\nnodes:\n" + tc.nodes))
			es, ok := AsErrors(err)
			if !ok || len(es) == 0 {
				t.Fatalf("accepted: %v", err)
			}
			if es[0].Path != tc.path || !strings.Contains(es[0].Reason, tc.want) {
				t.Errorf("got %v, want %s: %s", es, tc.path, tc.want)
			}
		})
	}
}

func TestNodeFileAuthor(t *testing.T) {
	for _, tc := range []struct{ path, node string }{{"/etc/portico.yaml", "a"}, {"p.yaml", ""}} {
		o := OriginOf(NodeFileAuthor(tc.path, tc.node))
		if o.Source != SourceFile || o.File != tc.path || o.Node != tc.node {
			t.Errorf("%q on %q: %+v", tc.path, tc.node, o)
		}
	}
}

// TestHASection: the ha section's groups are checked against the nodes,
// and an enabled section with an interface and groups is accepted.
func TestHASection(t *testing.T) {
	doc := clusterDoc + `ha:
  enabled: %s
  interface: eth0
  groups:
    - vrid: 51
      addresses: [192.0.2.100]
      peers: [192.0.2.1, 192.0.2.2]
      priorities: {a: 200, %s: 100}
      interval: 100ms
`
	if _, err := Parse([]byte(fmt.Sprintf(doc, "false", "b"))); err != nil {
		t.Fatalf("good ha section refused: %v", err)
	}
	_, err := Parse([]byte(fmt.Sprintf(doc, "false", "c")))
	if es, _ := AsErrors(err); len(es) != 1 || es[0].Path != "ha.groups[0].priorities.c" {
		t.Errorf("unknown node's priority: %v", err)
	}
	if _, err := Parse([]byte(fmt.Sprintf(doc, "true", "b"))); err != nil {
		t.Errorf("enabled: %v", err)
	}
}

// TestForNodeMovesListeners: SIP listeners on the shared interface
// addresses move to each node's own addresses; others (VIPs) stay, and the
// shared document is not changed.
func TestForNodeMovesListeners(t *testing.T) {
	doc := strings.Replace(clusterDoc, "    interfaces: {external: {address: 192.0.2.2, public_address: 198.51.100.2}}",
		"    interfaces: {external: {address: 192.0.2.2}, internal: {address: 10.0.0.12}}", 1) + `media: {enabled: true}
sip:
  enabled: true
  listeners:
    - {interface: external, transport: udp, address: "192.0.2.10:5060"}
    - {interface: external, transport: udp, address: "192.0.2.100:5060"}
    - {interface: internal, transport: udp, address: "10.0.0.10:5070"}
  call_servers:
    - {address: "10.9.9.9:5060", transport: udp}
`
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ node, want string }{
		{"a", "192.0.2.1:5060 192.0.2.100:5060 10.0.0.10:5070"},
		{"b", "192.0.2.2:5060 192.0.2.100:5060 10.0.0.12:5070"},
	} {
		c, err := cfg.ForNode(tc.node)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range c.SIP.Listeners {
			got = append(got, l.Address)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("node %s listens on %v, want %s", tc.node, got, tc.want)
		}
	}
	if cfg.SIP.Listeners[0].Address != "192.0.2.10:5060" || cfg.SIP.Listeners[2].Address != "10.0.0.10:5070" {
		t.Errorf("ForNode changed the shared listeners: %+v", cfg.SIP.Listeners)
	}
}
