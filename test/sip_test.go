package test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// startKamailio runs the inside call server (registrar honouring Path) on
// 127.0.0.4 until the test ends; defines are passed with -A (MCU_URI).
func startKamailio(t *testing.T, defines ...string) string {
	t.Helper()
	listen := fmt.Sprintf("127.0.0.4:%d", testpeer.FreePort(t))
	return startKamailioVia(t, nil, listen, func() bool {
		c, err := net.ListenPacket("udp", listen)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, defines...)
}

// startKamailioVia runs Kamailio on listen through the command prefix via
// (e.g. "ip netns exec NAME") until the test ends; bound reports when its
// UDP port is bound.
func startKamailioVia(t *testing.T, via []string, listen string, bound func() bool, defines ...string) string {
	t.Helper()
	bin := testpeer.Require(t, "kamailio")[0]
	dir := t.TempDir()
	cfg, _ := filepath.Abs("testdata/kamailio/inside.cfg")
	args := append(via[:len(via):len(via)], bin, "-DD", "-E", "-f", cfg, "-m", "64", "-M", "8", "-Y", dir, "-P", filepath.Join(dir, "k.pid"), "-l", "udp:"+listen, "-l", "tcp:"+listen)
	for _, d := range defines {
		args = append(args, "-A", d)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that the forked workers go with it; they
	// hold the output pipe, hence the WaitDelay.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 3 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("kamailio:\n%s", out.String())
		}
	})
	// Ready when its UDP port is bound.
	for i := 0; i < 100; i++ {
		if bound() {
			time.Sleep(200 * time.Millisecond) // bound: give it a moment to finish starting
			return listen
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("kamailio did not bind")
	return ""
}

// TestSIPThroughDaemon: portico serve with the SIP edge and media relay;
// sipp registers through it to Kamailio; the live registration and the
// history show in the API.
func TestSIPThroughDaemon(t *testing.T) {
	sipp := testpeer.Require(t, "sipp", "kamailio")[0]
	kam := startKamailio(t)
	dir := t.TempDir()
	mgmt := freeAddr(t)
	extPort, intPort := testpeer.FreePort(t), testpeer.FreePort(t)
	cfg := sipNodeConfig(mgmt, extPort, intPort, kam)
	d := startDaemon(t, dir, cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	c := newClient(t, d.url)
	c.csrf = true
	c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})

	scen, _ := filepath.Abs("testdata/sipp/register.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, sipp, "-sf", scen, "-i", "127.0.0.1", "-p", strconv.Itoa(testpeer.FreePort(t)), "-m", "1", "-nostdin", "-timeout", "30s", "-trace_err", "127.0.0.2:"+strconv.Itoa(extPort))
	run.Dir = t.TempDir()
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	// While sipp pauses between REGISTER and un-REGISTER, the binding is live.
	var regs []struct{ AOR, Source, Transport string }
	waitFor(t, 10*time.Second, func() bool {
		c.must(200, "GET", "/api/v1/registrations", nil).json(t, &regs)
		return len(regs) == 1
	})
	if !strings.Contains(regs[0].AOR, "alice@portico.test") || !strings.HasPrefix(regs[0].Source, "127.0.0.1:") || regs[0].Transport != "udp" {
		t.Errorf("live registration %+v", regs[0])
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("sipp: %v\n%s", err, out.String())
	}
	var hist []struct{ AOR, Kind string }
	waitFor(t, 10*time.Second, func() bool {
		c.must(200, "GET", "/api/v1/history/registrations", nil).json(t, &hist)
		return len(hist) >= 2
	})
	kinds := map[string]bool{}
	for _, h := range hist {
		kinds[h.Kind] = true
	}
	if !kinds["registered"] || !kinds["unregistered"] {
		t.Errorf("registration history %+v", hist)
	}
	c.must(200, "GET", "/api/v1/calls", nil)
	c.must(404, "DELETE", "/api/v1/calls/no-such-call", nil)
	var ready struct {
		Checks []struct {
			Name string
			OK   bool
		}
	}
	c.must(200, "GET", "/readyz", nil).json(t, &ready)
	names := ""
	for _, ch := range ready.Checks {
		names += ch.Name + " "
	}
	if !strings.Contains(names, "sip") || !strings.Contains(names, "media") {
		t.Errorf("readiness checks %q lack sip/media", names)
	}

	// A live change: a second call server is in use at once, a new listener
	// waits for the restart, which status says.
	var cur struct{ Version int64 }
	c.must(200, "GET", "/api/v1/config", nil).json(t, &cur)
	servers := fmt.Sprintf("    - {address: \"%s\", transport: udp}\n", kam)
	live := strings.Replace(cfg, servers, servers+"    - {address: \"127.0.0.9:5999\", transport: udp, priority: 9}\n", 1)
	live = strings.Replace(live, "  call_servers:\n", fmt.Sprintf("    - {interface: external, transport: tcp, address: \"127.0.0.2:%d\"}\n  call_servers:\n", extPort), 1)
	c.must(200, "PUT", "/api/v1/config", live, "If-Match", fmt.Sprintf(`"%d"`, cur.Version))
	var cs []struct {
		Address string
		Up      bool
	}
	c.must(200, "GET", "/api/v1/sip/call-servers", nil).json(t, &cs)
	if len(cs) != 2 || cs[0].Address != kam || cs[1].Address != "127.0.0.9:5999" {
		t.Errorf("call servers after a live change: %+v", cs)
	}
	var st struct {
		PendingRestart []string `json:"pending_restart"`
	}
	c.must(200, "GET", "/api/v1/status", nil).json(t, &st)
	if strings.Join(st.PendingRestart, ",") != "sip.listeners" {
		t.Errorf("pending_restart = %q, want only sip.listeners", st.PendingRestart)
	}
	d.stop()
}
