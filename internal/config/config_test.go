package config

import (
	"os"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/sipedge"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		path string // expected field path in the first error
		line int
		want string // substring of the reason
	}{
		{"malformed yaml", "version: 1\nnode: [\n", "", 0, "malformed YAML"},
		{"empty", "", "", 0, "empty"},
		{"unknown top field", "version: 1\nnod:\n  name: a\n", "nod", 2, "did you mean \"node\""},
		{"unknown nested field", "version: 1\nlog:\n  levle: info\n", "log.levle", 3, "unknown field"},
		{"bad cidr", "version: 1\ninterfaces:\n  internal:\n    address: 10.0.0.1\n    networks: [10.0.0.0/8, 10.1.0.0/33]\n", "interfaces.internal.networks[1]", 5, "not a CIDR"},
		{"host bits", "version: 1\ninterfaces:\n  internal:\n    address: 10.0.0.1\n    networks: [10.0.0.1/8]\n", "interfaces.internal.networks[0]", 5, "did you mean 10.0.0.0/8"},
		{"port out of range", "version: 1\nmanagement:\n  listen: 127.0.0.1:70000\n", "management.listen", 3, "70000 is not a port"},
		{"overlapping ranges", "version: 1\nmedia:\n  external: {port_min: 40000, port_max: 45000}\n  internal: {port_min: 44000, port_max: 50000}\n", "media.internal", 4, "overlaps media.external"},
		{"inverted range", "version: 1\nmedia:\n  external: {port_min: 45000, port_max: 40000}\n", "media.external", 3, "above port_max"},
		{"media workers", "version: 1\nmedia:\n  workers: -1\n", "media.workers", 3, "outside 0..256"},
		{"ng allow", "version: 1\nmedia:\n  ng_allow: [10.0.0.0/33]\n", "media.ng_allow[0]", 3, "not a CIDR"},
		{"bad backend", "version: 1\nstore:\n  backend: mysql\n", "store.backend", 3, "not a store backend"},
		{"wrong shape", "version: 1\nlog: verbose\n", "log", 2, "expected a mapping"},
		{"bad duration", "version: 1\nnode:\n  drain_timeout: soon\n", "node.drain_timeout", 3, "invalid duration"},
		{"wrong version", "version: 7\n", "version", 1, "not a document version"},
		{"path escape", "version: 1\nstore:\n  path: ../../etc/x.db\n", "store.path", 3, "inside the data directory"},
		{"two documents", "version: 1\n---\nversion: 1\n", "", 2, "more than one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatal("Parse accepted a bad document")
			}
			es, ok := AsErrors(err)
			if !ok || len(es) == 0 {
				t.Fatalf("error %v is not config.Errors", err)
			}
			e := es[0]
			if e.Path != tc.path {
				t.Errorf("path = %q, want %q (%v)", e.Path, tc.path, err)
			}
			if tc.line != 0 && e.Line != tc.line {
				t.Errorf("line = %d, want %d (%v)", e.Line, tc.line, err)
			}
			if !strings.Contains(e.Reason, tc.want) {
				t.Errorf("reason = %q, want it to contain %q", e.Reason, tc.want)
			}
		})
	}
}

func TestDefaultsAndRoundTrip(t *testing.T) {
	cfg, err := Parse([]byte("version: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Management.Listen != "127.0.0.1:9443" || cfg.Store.Backend != "sqlite" || cfg.Log.MaxFiles != 5 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	out, err := Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("re-parse of marshalled config: %v\n%s", err, out)
	}
	if ch := Changed(cfg, again); len(ch) != 0 {
		t.Errorf("round trip changed sections %v", ch)
	}
}

func TestChanged(t *testing.T) {
	a, b := Default(), Default()
	b.Log.Level = "debug"
	b.Management.Listen = "127.0.0.1:9444"
	got := Changed(a, b)
	if strings.Join(got, ",") != "management,log" {
		t.Errorf("Changed = %v", got)
	}
}

func TestExampleConfigValid(t *testing.T) {
	doc, err := os.ReadFile("../../examples/portico.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(doc); err != nil {
		t.Fatalf("examples/portico.yaml: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\n"))
	f.Add([]byte("version: 1\nmedia:\n  external: {port_min: 40000, port_max: 45000}\n"))
	f.Add([]byte("version: 1\ninterfaces:\n  internal:\n    networks: [10.0.0.0/8]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		cfg, err := Parse(doc)
		if err == nil {
			if _, err := Marshal(cfg); err != nil {
				t.Fatalf("valid config does not marshal: %v", err)
			}
		} else if _, ok := AsErrors(err); !ok {
			t.Fatalf("error is not config.Errors: %v", err)
		}
	})
}

func TestDiff(t *testing.T) {
	a, b := Default(), Default()
	b.Log.Level = "debug"
	b.TURN.UDP = []string{"127.0.0.1:3478"}
	b.AccessProxy.Listen = "127.0.0.1:8444"
	off := false
	b.Media.NATLatching = &off
	a.SIP.Listeners = []sipedge.Listener{} // empty equals absent
	got := strings.Join(Diff(a, b), ",")
	if got != "log.level,media.nat_latching,turn.udp,access_proxy.listen" {
		t.Errorf("Diff = %s", got)
	}
}
