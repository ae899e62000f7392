package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/app"
	"golang.org/x/sys/unix"
)

// notifier speaks systemd's notification protocol (sd_notify(3)): one
// datagram of newline-separated VAR=value assignments to the unix socket
// named by NOTIFY_SOCKET ("@" for the abstract namespace). Without
// NOTIFY_SOCKET it does nothing, so the same binary runs under Type=simple,
// a container or a terminal.
type notifier struct {
	addr *net.UnixAddr
	// watchdog is the keep-alive interval: half of WATCHDOG_USEC, as
	// sd_watchdog_enabled(3) advises; 0 when the watchdog is off or meant
	// for another process (WATCHDOG_PID).
	watchdog time.Duration
}

// newNotifier reads the environment systemd gives the service.
func newNotifier(getenv func(string) string) (*notifier, error) {
	n := &notifier{}
	if s := getenv("NOTIFY_SOCKET"); s != "" {
		if s[0] != '/' && s[0] != '@' {
			return nil, fmt.Errorf("NOTIFY_SOCKET %q: not a path or abstract socket", s)
		}
		name := s
		if s[0] == '@' {
			name = "\x00" + s[1:]
		}
		n.addr = &net.UnixAddr{Name: name, Net: "unixgram"}
	}
	if s := getenv("WATCHDOG_USEC"); s != "" && n.addr != nil {
		usec, err := strconv.ParseUint(s, 10, 63)
		if err != nil || usec == 0 {
			return nil, fmt.Errorf("WATCHDOG_USEC %q: not a positive number", s)
		}
		if p := getenv("WATCHDOG_PID"); p == "" || p == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(usec) * time.Microsecond / 2
		}
	}
	return n, nil
}

// send writes the assignments as one datagram; a missing socket is no
// error when NOTIFY_SOCKET is unset.
func (n *notifier) send(states ...string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// reloading is the message that starts a reload; systemd (since 253)
// wants the monotonic time with it to tell reloads apart.
func (n *notifier) reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return n.send("RELOADING=1")
	}
	return n.send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(ts.Nano()/1000, 10))
}

// keepAlive sends WATCHDOG=1 every watchdog interval until ctx ends.
func (n *notifier) keepAlive(ctx context.Context) {
	if n.watchdog <= 0 {
		return
	}
	t := time.NewTicker(n.watchdog)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.send("WATCHDOG=1")
		}
	}
}

// runNotified runs a, telling systemd READY=1 once every readiness check
// passes, WATCHDOG=1 while it runs, and STOPPING=1 as soon as the stop
// begins (before calls drain).
func runNotified(ctx context.Context, a *app.App, n *notifier) error {
	if n.addr == nil {
		return a.Run(ctx)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for !a.Ready(wctx) {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
		}
		n.send("READY=1", "STATUS=serving; management at "+a.ManagementURL())
		n.keepAlive(wctx) // returns at once without a watchdog
		<-wctx.Done()
		if ctx.Err() != nil {
			n.send("STOPPING=1", "STATUS=stopping: draining calls")
		}
	}()
	err := a.Run(ctx)
	cancel()
	<-done
	return err
}
