package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestServeDefaults(t *testing.T) {
	etc := filepath.Join(t.TempDir(), "portico.yaml")
	if err := os.WriteFile(etc, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lib := t.TempDir()
	readOnly := t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing")
	real := systemDefaults()
	for _, tc := range []struct {
		name           string
		env            map[string]string
		config, data   string // the installed paths the defaults look at
		writable       func(string) bool
		cfgFlag        string
		cfgGiven       bool
		dataFlag       string
		dataGiven      bool
		wantCfg, wantD string
	}{
		{name: "source checkout", config: missing, data: missing, dataFlag: "data", wantCfg: "", wantD: "data"},
		{name: "installed", config: etc, data: lib, dataFlag: "data", wantCfg: etc, wantD: lib},
		{name: "flags win", config: etc, data: lib, cfgFlag: "x.yaml", cfgGiven: true, dataFlag: "d", dataGiven: true, wantCfg: "x.yaml", wantD: "d"},
		{name: "systemd state directory", env: map[string]string{"STATE_DIRECTORY": "/run/s1:/run/s2"}, config: missing, data: lib, dataFlag: "data", wantD: "/run/s1"},
		{name: "state directory under a given --data", env: map[string]string{"STATE_DIRECTORY": "/run/s1"}, config: missing, data: lib, dataFlag: "mine", dataGiven: true, wantD: "mine"},
		{name: "unwritable /var/lib/portico", config: missing, data: readOnly, writable: func(p string) bool { return p != readOnly }, dataFlag: "data", wantD: "data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := real
			d.getenv = func(k string) string { return tc.env[k] }
			d.config, d.dataDir = tc.config, tc.data
			if tc.writable != nil {
				d.writable = tc.writable
			}
			if got := d.configFile(tc.cfgFlag, tc.cfgGiven); got != tc.wantCfg {
				t.Errorf("config %q, want %q", got, tc.wantCfg)
			}
			if got := d.dataDirectory(tc.dataFlag, tc.dataGiven); got != tc.wantD {
				t.Errorf("data %q, want %q", got, tc.wantD)
			}
		})
	}
}

// The real writability check: a directory this user cannot write is not
// chosen (root writes everything, so the check uses a file's mode instead).
func TestServeDefaultsWritable(t *testing.T) {
	d := systemDefaults()
	dir := t.TempDir()
	if !d.writable(dir) {
		t.Fatalf("%s: own temp dir not writable", dir)
	}
	if d.writable(filepath.Join(dir, "missing")) {
		t.Error("a missing directory counted as writable")
	}
}
