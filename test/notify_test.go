package test

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotify plays systemd's side of Type=notify with a unixgram
// socket written in this test (no systemd runs the daemon here): portico
// serve must send READY=1 once ready, WATCHDOG=1 at half of WATCHDOG_USEC,
// RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP, and
// STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	sock := filepath.Join(t.TempDir(), "notify")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	msgs := make(chan string, 1000)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pc.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	// next waits for a datagram holding want, returning what came before.
	next := func(want string) []string {
		t.Helper()
		var seen []string
		timeout := time.After(60 * time.Second)
		for {
			select {
			case m := <-msgs:
				seen = append(seen, m)
				for _, l := range strings.Split(m, "\n") {
					if l == want {
						return seen
					}
				}
			case <-timeout:
				t.Fatalf("no %s within 60s; got %q", want, seen)
			}
		}
	}

	mgmt := freeAddr(t)
	d := startDaemon(t, t.TempDir(), baseConfig(mgmt), mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword,
		"NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	ready := next("READY=1")
	if !strings.Contains(ready[len(ready)-1], "STATUS=serving") {
		t.Errorf("READY=1 without STATUS: %q", ready)
	}
	for range 3 {
		next("WATCHDOG=1")
	}
	d.signal(syscall.SIGHUP)
	seen := next("RELOADING=1")
	if r := seen[len(seen)-1]; !strings.Contains(r, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", r)
	}
	next("READY=1")
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	next("STOPPING=1")
}
