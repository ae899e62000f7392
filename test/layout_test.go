package test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type pkgInfo struct {
	ImportPath string
	Doc        string
	Name       string
	Imports    []string
	Dir        string
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "github.com/portico-edge/portico/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkgInfo
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// TestEveryPackageHasDoc: every package says what it is for.
func TestEveryPackageHasDoc(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment (// Package %s ...)", p.ImportPath, p.Name)
		}
	}
}

const mod = "github.com/portico-edge/portico/"

// codecs are pure: they import only the standard library and each other.
var codecPrefixes = []string{"internal/asn1per", "internal/h323/", "internal/sdp", "internal/pcap", "internal/media/rtp", "internal/media/bencode", "internal/accessproxy/ldap", "internal/accessproxy/proxyproto"}

// services must not be imported by codecs.
var servicePrefixes = []string{"internal/app", "internal/api", "internal/store", "internal/sipedge", "internal/h323proxy", "internal/media", "internal/turn", "internal/accessproxy", "internal/tunnel", "internal/policy", "internal/ha", "internal/snmp", "internal/web", "internal/config", "cmd/"}

func hasPrefix(path string, prefixes []string) bool {
	rel := strings.TrimPrefix(path, mod)
	for _, p := range prefixes {
		if rel == strings.TrimSuffix(p, "/") || strings.HasPrefix(rel, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

// TestCodecsImportNoServices keeps the import direction of DESIGN.md honest.
func TestCodecsImportNoServices(t *testing.T) {
	for _, p := range listPackages(t) {
		if !hasPrefix(p.ImportPath, codecPrefixes) || strings.HasSuffix(p.ImportPath, "test") {
			continue // test-support packages (h323test) may use the peers
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, mod) || hasPrefix(imp, codecPrefixes) {
				continue
			}
			if hasPrefix(imp, servicePrefixes) || strings.HasPrefix(imp, mod) {
				t.Errorf("codec %s imports %s; codecs import only the standard library and other codecs", p.ImportPath, imp)
			}
		}
	}
}

func TestHasPrefix(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{mod + "internal/media", true},
		{mod + "internal/media/ng", true},
		{mod + "internal/mediax", false},
		{mod + "cmd/portico", true},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			if got := hasPrefix(tc.path, servicePrefixes); got != tc.want {
				t.Errorf("hasPrefix(%q) = %v", tc.path, got)
			}
		})
	}
}
