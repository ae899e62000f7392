package main

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Where an installed node keeps its files (the Debian package's paths).
const (
	installedConfig  = "/etc/portico/portico.yaml"
	installedDataDir = "/var/lib/portico"
)

// serveDefaults picks serve's configuration file and data directory when
// the flags do not give them. The resolution order (docs/operations.md):
//
//	config: --config; else /etc/portico/portico.yaml when it exists; else none
//	data:   --data; else $STATE_DIRECTORY (set by systemd's StateDirectory=,
//	        first of a colon-separated list); else /var/lib/portico when it
//	        exists and this user can write it; else ./data
type serveDefaults struct {
	getenv   func(string) string
	config   string // installedConfig
	dataDir  string // installedDataDir
	exists   func(string) bool
	writable func(string) bool
}

func systemDefaults() serveDefaults {
	return serveDefaults{
		getenv: os.Getenv, config: installedConfig, dataDir: installedDataDir,
		exists:   func(p string) bool { _, err := os.Stat(p); return err == nil },
		writable: func(p string) bool { return unix.Access(p, unix.W_OK|unix.X_OK) == nil },
	}
}

// configFile returns the configuration file serve uses.
func (d serveDefaults) configFile(flag string, given bool) string {
	if given || d.config == "" {
		return flag
	}
	if d.exists(d.config) {
		return d.config
	}
	return flag
}

// dataDirectory returns the data directory serve uses.
func (d serveDefaults) dataDirectory(flag string, given bool) string {
	if given {
		return flag
	}
	if s := d.getenv("STATE_DIRECTORY"); s != "" {
		return strings.Split(s, ":")[0]
	}
	if d.dataDir != "" && d.exists(d.dataDir) && d.writable(d.dataDir) {
		return d.dataDir
	}
	return flag
}
