package testpeer

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Trapd is a running net-snmp snmptrapd and what it has logged.
type Trapd struct {
	// Addr is the loopback host:port it receives on.
	Addr string
	mu   sync.Mutex
	out  strings.Builder
}

// Log is everything snmptrapd printed so far: one header line and one
// line of variable bindings (numeric OIDs) per notification.
func (d *Trapd) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// StartSnmptrapd runs snmptrapd in the foreground on a free loopback port
// with conf as its only configuration (authCommunity, createUser,
// authUser lines), no MIBs, and its persistent state in a temporary
// directory. It is stopped when the test ends.
func StartSnmptrapd(t testing.TB, conf string) *Trapd {
	t.Helper()
	path := Require(t, "snmptrapd")[0]
	dir := t.TempDir()
	file := filepath.Join(dir, "snmptrapd.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Trapd{Addr: fmt.Sprintf("127.0.0.1:%d", FreePort(t))}
	cmd := exec.Command(path, "-f", "-Lo", "-C", "-c", file, "-On", "-m", "", "udp:"+d.Addr)
	cmd.Env = append(os.Environ(), "HOME="+dir, "SNMP_PERSISTENT_DIR="+dir, "MIBS=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		var once sync.Once
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if strings.Contains(sc.Text(), "NET-SNMP version") {
				once.Do(func() { close(started) })
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		<-done
	})
	select {
	case <-started:
	case <-done:
		t.Fatalf("snmptrapd exited:\n%s", d.Log())
	case <-time.After(10 * time.Second):
		t.Fatalf("snmptrapd did not start:\n%s", d.Log())
	}
	return d
}
