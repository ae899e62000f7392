package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// Keepalived is keepalived 2.2 running as a VRRPv3 speaker in a network
// namespace, for interoperation tests.
type Keepalived struct {
	cmd  *exec.Cmd
	out  Buffer
	once sync.Once
}

// StartKeepalived runs keepalived in namespace ns as the speaker of
// virtual router vrid on eth0 with priority prio, a 100 ms advertisement
// interval and the one address vip, until Kill or the end of the test. A
// missing keepalived fails the test (Debian package keepalived).
func StartKeepalived(t testing.TB, ns string, vrid, prio int, vip string) *Keepalived {
	t.Helper()
	return startKeepalived(t, ns, vrid, prio, vip+"/32", "")
}

// StartKeepalived6 is StartKeepalived for an IPv6 virtual router
// (native_ipv6): advertisements to ff02::12 from eth0's link-local
// address, vip an IPv6 address.
func StartKeepalived6(t testing.TB, ns string, vrid, prio int, vip string) *Keepalived {
	t.Helper()
	return startKeepalived(t, ns, vrid, prio, vip+"/128", "\n  native_ipv6")
}

func startKeepalived(t testing.TB, ns string, vrid, prio int, vip, extra string) *Keepalived {
	t.Helper()
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Fatal("keepalived is not installed (Debian package keepalived)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `global_defs {
  vrrp_version 3
  vrrp_garp_master_delay 0
}
vrrp_instance vi%[1]d {
  state BACKUP
  interface eth0
  virtual_router_id %[1]d
  priority %[2]d
  advert_int 0.1%[4]s
  virtual_ipaddress {
    %[3]s dev eth0
  }
}
`, vrid, prio, vip, extra), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &Keepalived{}
	k.cmd = exec.Command("ip", "netns", "exec", ns, "keepalived", "-n", "-l", "-D", "-P", "-f", conf,
		"-p", filepath.Join(dir, "k.pid"), "-r", filepath.Join(dir, "v.pid"), "--no-syslog")
	k.cmd.Stdout, k.cmd.Stderr = &k.out, &k.out
	// keepalived forks its VRRP child: the group is killed as one.
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Kill)
	return k
}

// Kill ends keepalived and its child with SIGKILL (no priority-0
// advertisement) and waits for it. Safe to call twice.
func (k *Keepalived) Kill() {
	k.once.Do(func() {
		syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		k.cmd.Wait()
	})
}

// Output is what keepalived logged.
func (k *Keepalived) Output() string {
	return k.out.String()
}
