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

// Every package of the tree is in exactly one of these lists, so a new package
// forces a decision about which way its imports may run (TestEveryPackageClassified).

// codecs are pure: they import only the standard library and each other.
var codecPrefixes = []string{
	"internal/asn1per", "internal/h323/h225", "internal/h323/h245", "internal/h323/h460", "internal/h323/q931", "internal/h323/ras",
	"internal/sdp", "internal/media/rtp", "internal/media/ng/bencode",
	"internal/accessproxy/ldap", "internal/accessproxy/proxyproto", "internal/accessproxy/sniff",
}

// services must not be imported by codecs.
var servicePrefixes = []string{"internal/app", "internal/api", "internal/store", "internal/sipedge", "internal/h323proxy", "internal/media", "internal/turn", "internal/accessproxy", "internal/tunnel", "internal/policy", "internal/guard", "internal/ha", "internal/hasync", "internal/snmp", "internal/web", "internal/config", "internal/backup", "cmd/"}

// support packages are small building blocks (sockets, logging, certificates,
// test peers) that services use; they import no service either.
var supportPrefixes = []string{"internal/batchio", "internal/udpbuf", "internal/handoff", "internal/logging", "internal/certs", "internal/testpeer", "internal/h323/h323test", "internal/connlimit", "internal/ladder", "tools/", "bench/", "test"}

// TestEveryPackageClassified derives the package list from the tree: a
// package nobody classified, or a listed prefix that matches no package, fails.
func TestEveryPackageClassified(t *testing.T) {
	pkgs := listPackages(t)
	lists := map[string][]string{"codec": codecPrefixes, "service": servicePrefixes, "support": supportPrefixes}
	used := map[string]bool{}
	for _, p := range pkgs {
		var in []string
		for kind, prefixes := range lists {
			for _, pre := range prefixes {
				if hasPrefix(p.ImportPath, []string{pre}) {
					in = append(in, kind)
					used[pre] = true
					break
				}
			}
		}
		switch {
		case len(in) == 0:
			t.Errorf("%s is in none of codecPrefixes, servicePrefixes, supportPrefixes: classify it", p.ImportPath)
		case len(in) > 1 && !(len(in) == 2 && hasPrefix(p.ImportPath, codecPrefixes)):
			// a codec may sit under a service's folder (internal/media/rtp); anything else is ambiguous
			t.Errorf("%s is classified as %v", p.ImportPath, in)
		}
	}
	for _, prefixes := range lists {
		for _, pre := range prefixes {
			if !used[pre] && !planned[pre] {
				t.Errorf("prefix %q matches no package in the tree: remove it or add it to planned", pre)
			}
		}
	}
}

// planned names the packages of DESIGN.md's layout that do not exist yet.
var planned = map[string]bool{
	"internal/h323proxy": true, "internal/tunnel": true, "internal/policy": true, "internal/guard": true,
	"internal/ha": true, "internal/snmp": true, "internal/web": true,
}

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

// TestServicesShareOnlyFieldErrors: a service validates its own section
// and reports with the shared field error (internal/config/field), a leaf
// of the standard library; only the composing packages (app, api, backup,
// cmd) read the whole document (internal/config).
func TestServicesShareOnlyFieldErrors(t *testing.T) {
	composers := []string{"internal/app", "internal/api", "internal/backup", "internal/config", "cmd/"}
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, mod)
		for _, imp := range p.Imports {
			switch {
			case rel == "internal/config/field" && strings.HasPrefix(imp, mod):
				t.Errorf("internal/config/field imports %s; it must stay a leaf every service can import", imp)
			case imp == mod+"internal/config" && !hasPrefix(p.ImportPath, composers) && !strings.HasPrefix(rel, "test"):
				t.Errorf("%s imports internal/config; a service takes its own Config and reports with internal/config/field", p.ImportPath)
			}
		}
	}
}
