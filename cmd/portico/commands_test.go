package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/store/sqlite"
)

// runCmd runs the CLI in process and returns its output and error.
func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := rootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func writeFile(t *testing.T, dir, name, doc string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigValidateBuildsServices: `portico config validate` refuses what a
// live load refuses (it used to only parse), with every field path.
func TestConfigValidateBuildsServices(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		doc   string
		valid bool
		want  []string
	}{
		{"valid", "version: 1\n", true, nil},
		{"service refuses", "version: 1\naccess_proxy:\n  enabled: true\n  listen: 127.0.0.1:8443\n  routes:\n    - {name: w, match: {alpn: [http/1.1]}, action: handoff, handler: sip-wss}\n",
			false, []string{"access_proxy.routes[0].handler (line 6"}},
		{"every problem", "version: 1\nmanagement:\n  max_login_failures: ten\nlog:\n  levle: info\n",
			false, []string{"management.max_login_failures (line 3, column 23)", "log.levle (line 5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCmd(t, "config", "validate", writeFile(t, dir, "c.yaml", tc.doc))
			if tc.valid {
				if err != nil || !strings.Contains(out, "valid") {
					t.Fatalf("refused: %v\n%s", err, out)
				}
				return
			}
			var ee exitError
			if !errors.As(err, &ee) || ee.code != 2 {
				t.Fatalf("err = %v, want exit 2\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestConfigImport: `portico config import` follows the import rule and
// --force overrides a newer API edit.
func TestConfigImport(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	f := writeFile(t, dir, "p.yaml", "version: 1\nlog: {level: info}\n")
	if out, err := runCmd(t, "config", "import", f, "--data", data); err != nil || !strings.Contains(out, "version 1") {
		t.Fatalf("first import: %v\n%s", err, out)
	}
	if out, err := runCmd(t, "config", "import", f, "--data", data); err != nil || !strings.Contains(out, "unchanged") {
		t.Fatalf("same file again: %v\n%s", err, out)
	}
	f2 := writeFile(t, dir, "p.yaml", "version: 1\nlog: {level: debug}\n")
	if out, err := runCmd(t, "config", "import", f2, "--data", data); err != nil || !strings.Contains(out, "version 2") {
		t.Fatalf("changed file: %v\n%s", err, out)
	}
	if out, err := runCmd(t, "config", "import", writeFile(t, dir, "bad.yaml", "version: 1\nlog: {level: shout}\n"), "--data", data); err == nil {
		t.Fatalf("a bad file was imported:\n%s", out)
	}
	// An API edit is newer than the last import: a changed file is refused
	// unless forced.
	st, err := sqlite.Open(context.Background(), filepath.Join(data, "portico.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutConfig(context.Background(), []byte("version: 1\nlog: {level: warn}\n"), "alice", "", 2); err != nil {
		t.Fatal(err)
	}
	st.Close()
	f3 := writeFile(t, dir, "p.yaml", "version: 1\nlog: {level: error}\n")
	if out, err := runCmd(t, "config", "import", f3, "--data", data); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("import over an API edit: %v\n%s", err, out)
	}
	if out, err := runCmd(t, "config", "import", f3, "--data", data, "--force"); err != nil || !strings.Contains(out, "version 4") {
		t.Fatalf("forced import: %v\n%s", err, out)
	}
	out, err := runCmd(t, "config", "export", "--data", data)
	if err != nil || !strings.Contains(out, "error") {
		t.Fatalf("export after imports: %v\n%s", err, out)
	}
}
