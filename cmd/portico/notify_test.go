package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestNewNotifier(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name     string
		env      map[string]string
		on       bool
		watchdog time.Duration
		bad      bool
	}{
		{name: "not under systemd", env: map[string]string{}},
		{name: "socket only", env: map[string]string{"NOTIFY_SOCKET": "/run/x"}, on: true},
		{name: "watchdog", env: map[string]string{"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"}, on: true, watchdog: 15 * time.Second},
		{name: "watchdog for this pid", env: map[string]string{"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": me}, on: true, watchdog: time.Second},
		{name: "watchdog for another pid", env: map[string]string{"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, on: true},
		{name: "watchdog without socket", env: map[string]string{"WATCHDOG_USEC": "2000000"}},
		{name: "bad socket", env: map[string]string{"NOTIFY_SOCKET": "run/x"}, bad: true},
		{name: "bad watchdog", env: map[string]string{"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "soon"}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newNotifier(func(k string) string { return tc.env[k] })
			if tc.bad {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (n.addr != nil) != tc.on || n.watchdog != tc.watchdog {
				t.Errorf("addr %v watchdog %v; want on=%v watchdog %v", n.addr, n.watchdog, tc.on, tc.watchdog)
			}
		})
	}
}

// An abstract-namespace NOTIFY_SOCKET ("@name") receives the datagram.
func TestNotifyAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("portico-notify-test-%d", os.Getpid())
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "\x00" + name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	n, err := newNotifier(func(k string) string {
		if k == "NOTIFY_SOCKET" {
			return "@" + name
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.send("READY=1", "STATUS=ok"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, err := pc.Read(buf)
	if err != nil || string(buf[:k]) != "READY=1\nSTATUS=ok" {
		t.Fatalf("got %q, %v", buf[:k], err)
	}
}
