package test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// sipOptionsTCP sends one OPTIONS over a new TCP connection to addr and
// returns the status line of the answer.
func sipOptionsTCP(addr string, wait time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	local := c.LocalAddr().String()
	id := time.Now().UnixNano()
	msg := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\n"+
		"Via: SIP/2.0/TCP %s;branch=z9hG4bK%d;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:probe@portico.test>;tag=%d\r\n"+
		"To: <sip:%s>\r\n"+
		"Call-ID: %d@probe\r\n"+
		"CSeq: 1 OPTIONS\r\n"+
		"Content-Length: 0\r\n\r\n", addr, local, id, id, addr, id)
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// openFDs counts the descriptors process pid has open.
func openFDs(pid int) int {
	es, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es)
}

// httpStatusLine sends a plain HTTP request to addr and returns the status
// line of the answer.
func httpStatusLine(addr string, wait time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: portico.test\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestSIPTCPSurvivesDescriptorExhaustion: a daemon limited to 256 file
// descriptors is flooded with more TCP connections to its SIP TCP listener
// than it has descriptors. While they are held the management API still
// answers (descriptors are kept free for it); once they are released SIP
// over TCP answers again (the listener neither died nor stays refused), and
// readiness agrees. The access proxy, whose share of free descriptors is
// smaller, answers during the flood too.
func TestSIPTCPSurvivesDescriptorExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon test; skipped under -short")
	}
	dir := t.TempDir()
	mgmt := freeAddr(t)
	sipAddr := freeAddr(t)
	apAddr := freeAddr(t)
	csPort, intPort := testpeer.FreePort(t), testpeer.FreePort(t)
	base := 40000 + (csPort%500)*20
	for intPort >= base && intPort < base+20 { // the daemon refuses an overlap
		base += 20
	}
	cfg := baseConfig(mgmt) + fmt.Sprintf(`media:
  enabled: true
  external: {port_min: %d, port_max: %d}
  internal: {port_min: %d, port_max: %d}
sip:
  enabled: true
  domain: portico.test
  listeners:
    - {interface: external, transport: tcp, address: "%s"}
    - {interface: internal, transport: udp, address: "127.0.0.1:%d"}
  call_servers:
    - {address: "127.0.0.1:%d", transport: udp}
access_proxy:
  enabled: true
  listen: %s
`, base, base+9, base+10, base+19, sipAddr, intPort, csPort, apAddr)
	// bash's ulimit -n sets the soft and the hard limit, so Go's start-up
	// raise of the soft limit to the hard one stays at 256.
	via := []string{"/bin/sh", "-c", `ulimit -n 256 && exec "$0" "$@"`}
	d := startDaemonVia(t, via, dir, cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	if line, err := sipOptionsTCP(sipAddr, 10*time.Second); err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("OPTIONS over TCP before the flood: %q, %v", line, err)
	}

	// The flood: 400 idle connections, more than the daemon's whole
	// descriptor table.
	flood := floodConns(t, d, sipAddr, 1)
	healthzAnswers(t, d)
	hc := insecureClient(nil)
	hc.Timeout = 10 * time.Second

	if line, err := httpStatusLine(apAddr, 10*time.Second); err != nil || !strings.HasPrefix(line, "HTTP/1.1 ") {
		t.Errorf("access proxy during the flood: %q, %v", line, err)
	}

	for _, c := range flood {
		c.Close()
	}
	flood = nil
	// Refused and released connections are gone within a few accept
	// retries; the listener must then answer again.
	var (
		line string
		err  error
	)
	waitFor(t, 30*time.Second, func() bool {
		line, err = sipOptionsTCP(sipAddr, 3*time.Second)
		return err == nil && strings.HasPrefix(line, "SIP/2.0 200")
	})
	resp, err := hc.Get(d.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after the flood: %s", resp.Status)
	}
}

// floodConns opens 400 idle TCP connections to addr from sources loopback
// addresses (127.0.0.20 on; 1: the default source), closed when the test
// ends, and returns once the daemon has taken what it will of them (its
// descriptor count stopped growing).
func floodConns(t *testing.T, d *daemon, addr string, sources int) []net.Conn {
	t.Helper()
	var flood []net.Conn
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})
	for i := range 400 {
		dl := net.Dialer{Timeout: 2 * time.Second}
		if sources > 1 {
			dl.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(20+i%sources))}
		}
		c, err := dl.Dial("tcp", addr)
		if err != nil {
			continue // the backlog is full: the daemon is not accepting
		}
		flood = append(flood, c)
	}
	fds := openFDs(d.cmd.Process.Pid)
	for i := 0; i < 100; i++ {
		time.Sleep(200 * time.Millisecond)
		n := openFDs(d.cmd.Process.Pid)
		if n == fds {
			break
		}
		fds = n
	}
	t.Logf("flood: %d connections held; the daemon has %d descriptors open of 256", len(flood), fds)
	return flood
}

// healthzAnswers checks that management answers /healthz (during a flood).
func healthzAnswers(t *testing.T, d *daemon) {
	t.Helper()
	hc := insecureClient(nil)
	hc.Timeout = 10 * time.Second
	resp, err := hc.Get(d.url + "/healthz")
	if err != nil {
		t.Errorf("management /healthz during the flood: %v", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("management /healthz during the flood: %s", resp.Status)
	}
}
