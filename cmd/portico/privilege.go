package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// checkDataDir makes sure dir exists and this process can write it, so a start
// with an unusable --data (./data by default, read-only under the systemd unit's
// ProtectSystem=strict) fails with the flag and the fix named.
func checkDataDir(dir string) error {
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		var f *os.File
		if f, err = os.CreateTemp(dir, ".portico-write-check-*"); err == nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
	if err == nil {
		return nil
	}
	abs, aerr := filepath.Abs(dir)
	if aerr != nil {
		abs = dir
	}
	return fmt.Errorf("--data %s: %w: give --data a directory that %s can write (the Debian package's service uses /var/lib/portico)", abs, err, whoAmI())
}

// explainPrivilege adds what to grant to a listener that the kernel refused for
// lack of privilege (a port below 1024 without CAP_NET_BIND_SERVICE).
func explainPrivilege(err error) error {
	var op *net.OpError
	if err == nil || !errors.As(err, &op) || op.Op != "listen" || !errors.Is(err, syscall.EACCES) {
		return err
	}
	return fmt.Errorf("%w: ports below 1024 need root or CAP_NET_BIND_SERVICE (the portico systemd unit grants it; by hand: setcap cap_net_bind_service=+ep on the binary), or choose a port of 1024 or above", err)
}

// whoAmI names the user this process runs as.
func whoAmI() string {
	if u, err := user.Current(); err == nil {
		return "user " + u.Username
	}
	return "uid " + strconv.Itoa(os.Getuid())
}
