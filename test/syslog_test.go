package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestRemoteSyslogRsyslog runs the daemon with log.syslog pointing at a real
// rsyslogd (in the foreground, its own configuration, loopback only) over
// UDP and over TCP. rsyslog parses what it receives as RFC 5424 and writes
// it back out in that format; a record it could not parse would come out
// without MSGID and structured data. A failed login must arrive as a log
// record and as an audit record, and the password tried must not.
func TestRemoteSyslogRsyslog(t *testing.T) {
	rsyslogd := testpeer.Require(t, "rsyslogd")[0]
	testpeer.LockNetwork(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "received.log")
	// The ports are chosen free but may be taken by another package's test
	// before rsyslogd binds them: a start that does not listen is retried
	// on new ports.
	var udpPort, tcpPort int
	for attempt := 1; ; attempt++ {
		udpPort, tcpPort = testpeer.FreePort(t), testpeer.FreePort(t)
		if startRsyslog(t, rsyslogd, dir, out, udpPort, tcpPort, attempt == 3) {
			break
		}
	}

	for _, tc := range []struct {
		transport string
		port      int
	}{{"udp", udpPort}, {"tcp", tcpPort}} {
		t.Run(tc.transport, func(t *testing.T) {
			mgmt := freeAddr(t)
			node := "syslog-" + tc.transport
			cfg := strings.Replace(baseConfig(mgmt), "name: test-node", "name: "+node, 1) +
				fmt.Sprintf("  syslog: {address: 127.0.0.1:%d, transport: %s}\n", tc.port, tc.transport)
			d := startDaemon(t, t.TempDir(), cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
			c := newClient(t, d.url)
			c.do("POST", "/api/v1/login", map[string]string{"username": "admin", "password": "hunter2-wrong"})
			var got string
			waitFor(t, 20*time.Second, func() bool {
				b, _ := os.ReadFile(out)
				got = string(b)
				// Both records of this node: the other transport's run
				// left its own in the same file.
				var log, audit bool
				for _, line := range strings.Split(got, "\n") {
					if strings.Contains(line, " "+node+" portico ") {
						log = log || strings.Contains(line, "login failed")
						audit = audit || strings.Contains(line, `action="login.failed"`)
					}
				}
				return log && audit
			})
			var log, audit bool
			for _, line := range strings.Split(got, "\n") {
				if !strings.Contains(line, " "+node+" portico ") {
					continue
				}
				if strings.Contains(line, "hunter2") {
					t.Errorf("password reached the collector: %s", line)
				}
				// rsyslog kept PRI, version, MSGID and structured data.
				if strings.HasPrefix(line, "<"+fmt.Sprint(16*8+4)+">1 ") && strings.Contains(line, " [portico@32473 ") && strings.Contains(line, "login failed") {
					log = true
				}
				if strings.HasPrefix(line, "<"+fmt.Sprint(10*8+5)+">1 ") && strings.Contains(line, ` user="admin"`) {
					audit = true
				}
			}
			if !log || !audit {
				t.Errorf("want the warning (local0.warning) and the audit record (authpriv.notice) from %s; got\n%s", node, got)
			}
		})
	}
}

// startRsyslog runs rsyslogd on udpPort and tcpPort writing what it
// receives to out, and reports whether it listens within 10 s; a start
// that does not is stopped (and fails the test when last).
func startRsyslog(t *testing.T, rsyslogd, dir, out string, udpPort, tcpPort int, last bool) bool {
	t.Helper()
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="%d" ruleset="r")
input(type="imtcp" address="127.0.0.1" port="%d" ruleset="r")
ruleset(name="r") { action(type="omfile" file=%q template="RSYSLOG_SyslogProtocol23Format") }
`, dir, udpPort, tcpPort, out)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := exec.CommandContext(ctx, rsyslogd, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var rsOut syncBuffer
	rs.Stdout, rs.Stderr = &rsOut, &rsOut
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if listening(tcpPort) {
			t.Cleanup(func() { cancel(); rs.Wait() })
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	rs.Wait()
	if last {
		t.Fatalf("rsyslogd did not listen on tcp %d within 10 s:\n%s", tcpPort, rsOut.String())
	}
	t.Logf("rsyslogd did not listen on tcp %d within 10 s, trying other ports:\n%s", tcpPort, rsOut.String())
	return false
}

// listening reports whether something accepts TCP on 127.0.0.1:port. It
// dials rather than reading /proc/net/tcp: that file shows the namespace of
// the process's main thread, which a namespace test of this package may have
// left in another namespace (a locked thread that is the main one is parked,
// not ended).
func listening(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
