package test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// sipNodeConfig is a node with the media relay and the SIP edge: external
// side 127.0.0.2, internal 127.0.0.3, UDP listeners on extPort and intPort,
// one call server. More sip fields may be appended.
func sipNodeConfig(mgmt string, extPort, intPort int, callServer string) string {
	base := 30000 + (extPort%500)*20
	// The listener ports are free ports of the kernel's choice, which can
	// fall in these media ranges: the daemon would refuse the overlap.
	for extPort >= base && extPort < base+20 || intPort >= base && intPort < base+20 {
		base += 20
		if base >= 40000 {
			base = 30000
		}
	}
	cfg := strings.Replace(baseConfig(mgmt), "external: {address: 127.0.0.1}", "external: {address: 127.0.0.2}", 1)
	cfg = strings.Replace(cfg, "internal: {address: 127.0.0.1, networks: [10.0.0.0/8]}", "internal: {address: 127.0.0.3, networks: [10.0.0.0/8]}", 1)
	return cfg + fmt.Sprintf(`media:
  enabled: true
  external: {port_min: %d, port_max: %d}
  internal: {port_min: %d, port_max: %d}
sip:
  enabled: true
  domain: portico.test
  listeners:
    - {interface: external, transport: udp, address: "127.0.0.2:%d"}
    - {interface: internal, transport: udp, address: "127.0.0.3:%d"}
  call_servers:
    - {address: "%s", transport: udp}
`, base, base+9, base+10, base+19, extPort, intPort, callServer)
}

// countingCallServer counts the requests other than OPTIONS (the edge's
// health probes) that reach it, answering each with 404.
func countingCallServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.4:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var n atomic.Int64
	go func() {
		buf := make([]byte, 65535)
		for {
			k, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			msg := string(buf[:k])
			if strings.HasPrefix(msg, "SIP/2.0") {
				continue
			}
			if !strings.HasPrefix(msg, "OPTIONS ") {
				n.Add(1)
			}
			// A 404 built from the request's own headers.
			var hdrs []string
			for _, l := range strings.Split(msg, "\r\n")[1:] {
				for _, h := range []string{"Via:", "From:", "To:", "Call-ID:", "CSeq:"} {
					if strings.HasPrefix(l, h) {
						hdrs = append(hdrs, l)
					}
				}
			}
			c.WriteTo([]byte("SIP/2.0 404 Not Found\r\n"+strings.Join(hdrs, "\r\n")+"\r\nContent-Length: 0\r\n\r\n"), from)
		}
	}()
	return c.LocalAddr().String(), &n
}

// TestGuardThroughDaemon: sipvicious' svwar against a running node is
// blocked at its first request, the call server receives nothing, the
// block shows in the API, the events and the metrics, and an admin lifts
// it; the policy dry run answers with the node's guest rules.
func TestGuardThroughDaemon(t *testing.T) {
	svwar := testpeer.Require(t, "svwar")[0]
	cs, received := countingCallServer(t)
	dir := t.TempDir()
	mgmt := freeAddr(t)
	extPort, intPort := testpeer.FreePort(t), testpeer.FreePort(t)
	cfg := sipNodeConfig(mgmt, extPort, intPort, cs) + "  guest: {enabled: true, vmr_ranges: [\"7000-7999\"]}\n"
	d := startDaemon(t, dir, cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	c := newClient(t, d.url)
	c.csrf = true
	c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	// Ready once every service, the SIP edge among them, runs.
	waitFor(t, 30*time.Second, func() bool { return c.do("GET", "/readyz", nil).code == 200 })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, svwar, "-e100-120", "--maximumtime=2", "-b", "127.0.0.1", "-x", "127.0.0.1",
		"-P", strconv.Itoa(testpeer.FreePort(t)), "-p", strconv.Itoa(extPort), "127.0.0.2")
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	run.Run() // svwar exits non-zero when it finds nothing
	var blocks []struct {
		Source, Reason string
		Dropped        int
	}
	c.must(200, "GET", "/api/v1/guard/blocks?q=127.0.0.1", nil).json(t, &blocks)
	if len(blocks) != 1 || blocks[0].Source != "127.0.0.1" || blocks[0].Reason != "scanner_agent" {
		t.Fatalf("blocks %+v; svwar said:\n%s", blocks, out.String())
	}
	if n := received.Load(); n != 0 {
		t.Fatalf("the call server received %d requests from the scanner", n)
	}
	var events []struct{ Component, Message string }
	c.must(200, "GET", "/api/v1/events", nil).json(t, &events)
	found := false
	for _, e := range events {
		found = found || (e.Component == "guard" && strings.Contains(e.Message, "blocked 127.0.0.1/32: scanner_agent"))
	}
	if !found {
		t.Errorf("no guard event in %+v", events)
	}
	if m := string(c.must(200, "GET", "/metrics", nil).body); !strings.Contains(m, `portico_guard_blocks_total{reason="scanner_agent"} 1`) {
		t.Error("metrics lack the block")
	}
	c.must(204, "DELETE", "/api/v1/guard/blocks/127.0.0.1", nil)
	c.must(404, "DELETE", "/api/v1/guard/blocks/127.0.0.1", nil)
	c.must(200, "GET", "/api/v1/guard/blocks", nil).json(t, &blocks)
	if len(blocks) != 0 {
		t.Fatalf("blocks after removal %+v", blocks)
	}

	var dec struct {
		Rule, Action, Caller string
		Code                 int
	}
	c.must(200, "POST", "/api/v1/policy/dry-run", map[string]string{"from": "sip:eve@example.net", "to": "sip:8000@portico.test", "source": "203.0.113.5"}).json(t, &dec)
	if dec.Rule != "guest-deny" || dec.Action != "deny" || dec.Code != 403 || dec.Caller != "guest" {
		t.Errorf("dry run %+v", dec)
	}
}
