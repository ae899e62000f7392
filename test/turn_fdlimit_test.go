package test

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// stunBindingTCP sends one Binding request over a new TCP connection to
// addr and reports whether a Binding success came back.
func stunBindingTCP(addr string, wait time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := c.Write(req.Raw); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	res := stun.Message{Raw: buf[:n]}
	if err := res.Decode(); err != nil {
		return err
	}
	if res.Type != stun.BindingSuccess {
		return fmt.Errorf("answer %v", res.Type)
	}
	return nil
}

// TestTURNTCPSurvivesDescriptorExhaustion: a daemon limited to 256 file
// descriptors is flooded with more TCP connections to its TURN TCP
// listener than it has descriptors, from eight source addresses (so the
// per-source cap alone does not stop it). While they are held the
// management API still answers; once they are released TURN over TCP
// answers again and readiness agrees.
func TestTURNTCPSurvivesDescriptorExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon test; skipped under -short")
	}
	dir := t.TempDir()
	mgmt := freeAddr(t)
	turnAddr := freeAddr(t)
	cfg := baseConfig(mgmt) + fmt.Sprintf(`turn:
  enabled: true
  tcp: ["%s"]
`, turnAddr)
	via := []string{"/bin/sh", "-c", `ulimit -n 256 && exec "$0" "$@"`}
	d := startDaemonVia(t, via, dir, cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	if err := stunBindingTCP(turnAddr, 10*time.Second); err != nil {
		t.Fatalf("Binding over TCP before the flood: %v", err)
	}

	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for i := range 400 {
		dl := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(20+i%8))}}
		c, err := dl.Dial("tcp", turnAddr)
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

	hc := insecureClient(nil)
	hc.Timeout = 10 * time.Second
	if resp, err := hc.Get(d.url + "/healthz"); err != nil {
		t.Errorf("management /healthz during the flood: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("management /healthz during the flood: %s", resp.Status)
		}
	}

	for _, c := range flood {
		c.Close()
	}
	flood = nil
	var err error
	waitFor(t, 30*time.Second, func() bool {
		err = stunBindingTCP(turnAddr, 3*time.Second)
		return err == nil
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
