package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestServeStateDirectory: under systemd (StateDirectory= sets
// STATE_DIRECTORY) portico serve without --data keeps its store there, not
// in ./data of its working directory.
func TestServeStateDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	mgmt := freeAddr(t)
	cwd, state := t.TempDir(), t.TempDir()
	cfg := filepath.Join(cwd, "portico.yaml")
	if err := os.WriteFile(cfg, []byte(baseConfig(mgmt)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(portico(t), "serve", "--config", cfg)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "STATE_DIRECTORY="+state, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	p := startProcess(t, cmd)
	p.waitOK(t, "https://"+mgmt+"/healthz", 60*time.Second)
	if _, err := os.Stat(filepath.Join(state, "portico.db")); err != nil {
		t.Errorf("no store in STATE_DIRECTORY: %v\n%s", err, p.out.String())
	}
	if _, err := os.Stat(filepath.Join(cwd, "data")); err == nil {
		t.Errorf("./data created although STATE_DIRECTORY was set")
	}
}
