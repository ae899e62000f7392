package test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestDebInstallReal installs the Debian package on this machine's own root
// with dpkg -i, so the maintainer scripts take their real-root branches
// (deb-systemd-helper, deb-systemd-invoke, useradd on /etc/passwd). It checks
// the installed files, the portico user and group and the permissions, verifies
// the installed unit, runs the installed binary as the unit does (ExecStart read
// from the unit, the portico user, only the unit's capabilities, STATE_DIRECTORY),
// upgrades to a newer build with a changed configuration, and purges. The
// package is purged when the test ends in any case. It needs root and a machine
// that may be changed (CI's container); it refuses to run where a portico
// package, user data or configuration already exist.
func TestDebInstallReal(t *testing.T) {
	testpeer.Require(t, "dpkg", "dpkg-deb", "dpkg-query", "systemd-analyze", "setpriv", "userdel", "groupdel", "sh")
	if os.Geteuid() != 0 {
		t.Fatal("the real install test runs dpkg -i on this machine and needs root")
	}
	if out, err := exec.Command("dpkg-query", "--show", "--showformat=${Status}", "portico").CombinedOutput(); err == nil {
		t.Fatalf("a portico package is present on this machine (%s); the test does not replace an administrator's install", bytes.TrimSpace(out))
	}
	for _, p := range []string{"/etc/portico", "/var/lib/portico", "/usr/bin/portico"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists without a portico package; the test would delete it on purge", p)
		}
	}
	_, userErr := user.Lookup("portico")
	_, groupErr := user.LookupGroup("portico")
	work := t.TempDir()
	debA := buildDeb(t, filepath.Join(work, "dist"), "1.0.0")
	debB := buildDeb(t, filepath.Join(work, "dist"), "1.0.1")

	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "portico").CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg --purge portico: %v\n%s", err, out)
		}
		// The user stays after a purge by design; the test removes the one it made.
		if userErr != nil {
			exec.Command("userdel", "portico").Run()
		}
		if groupErr != nil {
			exec.Command("groupdel", "portico").Run()
		}
	})

	must(t, "dpkg", "--install", debA)
	if st := must(t, "dpkg-query", "--show", "--showformat=${Status} ${Version}", "portico"); st != "install ok installed 1.0.0" {
		t.Fatalf("after dpkg -i: %q", st)
	}

	u, err := user.Lookup("portico")
	if err != nil {
		t.Fatalf("no portico user after the install: %v", err)
	}
	g, err := user.LookupGroup("portico")
	if err != nil {
		t.Fatalf("no portico group after the install: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	if uid <= 0 || uid >= 1000 || gid <= 0 || gid >= 1000 || u.Gid != g.Gid {
		t.Errorf("portico uid %d gid %d (primary %s): want a system user in the system group portico", uid, gid, u.Gid)
	}
	if u.HomeDir != "/var/lib/portico" {
		t.Errorf("portico's home %s", u.HomeDir)
	}
	if !strings.Contains(readFile(t, "/etc/passwd"), ":/var/lib/portico:/usr/sbin/nologin\n") {
		t.Error("portico's shell is not /usr/sbin/nologin")
	}

	conf, store := "/etc/portico/portico.yaml", "/var/lib/portico"
	checkOwner(t, "/usr/bin/portico", 0o755, 0, 0)
	checkOwner(t, conf, 0o640, 0, gid)
	checkOwner(t, store, 0o700|os.ModeDir, uid, gid)
	checkOwner(t, "/usr/share/snmp/mibs/PORTICO-MIB.txt", 0o644, 0, 0)
	if c := strings.TrimSpace(readFile(t, "/var/lib/dpkg/info/portico.conffiles")); c != conf {
		t.Errorf("dpkg's conffiles for portico: %q", c)
	}
	unitPath := ""
	for _, p := range []string{"/usr/lib/systemd/system/portico.service", "/lib/systemd/system/portico.service"} {
		if _, err := os.Stat(p); err == nil {
			unitPath = p
			break
		}
	}
	if unitPath == "" {
		t.Fatal("no portico.service installed in /usr/lib/systemd/system or /lib/systemd/system")
	}
	checkOwner(t, unitPath, 0o644, 0, 0)
	// The installed unit, with the installed binary behind its ExecStart.
	if out, err := exec.Command("systemd-analyze", "--man=no", "verify", unitPath).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
	// deb-systemd-helper recorded the enablement for when systemd runs: a link
	// that leads to the installed unit.
	wants := "/etc/systemd/system/multi-user.target.wants/portico.service"
	if to, err := filepath.EvalSymlinks(wants); err != nil {
		t.Errorf("the first install did not enable the service: %v", err)
	} else if unitReal, _ := filepath.EvalSymlinks(unitPath); to != unitReal {
		t.Errorf("%s leads to %s, not to the installed unit %s", wants, to, unitReal)
	}

	unit := unitKeys(readFile(t, unitPath))
	execStart := strings.Fields(unit["ExecStart"])
	if len(execStart) < 2 || execStart[0] != "/usr/bin/portico" {
		t.Fatalf("ExecStart %q", unit["ExecStart"])
	}
	var caps []string
	for _, c := range strings.Fields(unit["AmbientCapabilities"]) {
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	if len(caps) == 0 || unit["User"] != "portico" || unit["Group"] != "portico" || unit["StateDirectory"] != "portico" {
		t.Fatalf("unit: User=%q Group=%q AmbientCapabilities=%q StateDirectory=%q", unit["User"], unit["Group"], unit["AmbientCapabilities"], unit["StateDirectory"])
	}

	// The administrator's change: the console on a loopback port below 1024
	// (which needs the unit's CAP_NET_BIND_SERVICE).
	port := privilegedPort(t)
	changed := readFile(t, conf)
	if !strings.Contains(changed, "listen: 0.0.0.0:9443") {
		t.Fatal("the installed configuration does not listen on 0.0.0.0:9443")
	}
	changed = strings.Replace(changed, "listen: 0.0.0.0:9443", fmt.Sprintf("listen: 127.0.0.1:%d", port), 1) + "# changed by the administrator\n"
	if err := os.WriteFile(conf, []byte(changed), 0o640); err != nil {
		t.Fatal(err)
	}

	var storeSum [32]byte
	t.Run("serve-as-the-unit", func(t *testing.T) {
		args := []string{"--reuid=" + u.Uid, "--regid=" + g.Gid, "--init-groups",
			"--inh-caps=-all," + strings.Join(caps, ","), "--ambient-caps=" + strings.Join(caps, ","),
			"--bounding-set=-all," + strings.Join(caps, ",")}
		if unit["NoNewPrivileges"] == "yes" {
			args = append(args, "--no-new-privs")
		}
		// UMask= of the unit, then exec of ExecStart as it is written.
		args = append(args, "--", "sh", "-c", "umask "+unit["UMask"]+" && exec \"$0\" \"$@\"")
		cmd := exec.Command("setpriv", append(args, execStart...)...)
		cmd.Env = append(os.Environ(), "STATE_DIRECTORY="+store)
		cmd.Dir = "/"
		p := startProcess(t, cmd)
		p.waitOK(t, fmt.Sprintf("https://127.0.0.1:%d/readyz", port), 60*time.Second)
		// install.md: the first admin password is in the service's output (the journal).
		if !strings.Contains(p.out.String(), `Portico first start: created user "admin" with password `) {
			t.Errorf("the first start does not print the admin password:\n%s", p.out.String())
		}
		status := readFile(t, fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if !strings.Contains(status, fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", uid, uid, uid, uid)) {
			t.Errorf("the daemon does not run as portico:\n%s", status)
		}
		checkOwner(t, filepath.Join(store, "portico.db"), 0o600, uid, gid)
	})
	if b, err := os.ReadFile(filepath.Join(store, "portico.db")); err == nil {
		storeSum = sha256.Sum256(b)
	} else {
		t.Fatalf("no store after the first start: %v", err)
	}

	// Upgrade: the changed configuration and the store stay.
	must(t, "dpkg", "--install", debB)
	if st := must(t, "dpkg-query", "--show", "--showformat=${Status} ${Version}", "portico"); st != "install ok installed 1.0.1" {
		t.Errorf("after the upgrade: %q", st)
	}
	if readFile(t, conf) != changed {
		t.Error("the upgrade replaced the changed configuration")
	}
	checkOwner(t, conf, 0o640, 0, gid)
	if b, err := os.ReadFile(filepath.Join(store, "portico.db")); err != nil || sha256.Sum256(b) != storeSum {
		t.Errorf("the upgrade did not keep the store (%v)", err)
	}
	if n := strings.Count(readFile(t, "/etc/passwd"), "\nportico:"); n != 1 {
		t.Errorf("%d portico users after the upgrade", n)
	}

	// Remove: the binary goes; the store and the configuration stay, and the
	// unit is masked until a purge or a new install.
	must(t, "dpkg", "--remove", "portico")
	if _, err := os.Stat("/usr/bin/portico"); err == nil {
		t.Error("remove left /usr/bin/portico")
	}
	for _, p := range []string{filepath.Join(store, "portico.db"), conf} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("remove did not keep %s: %v", p, err)
		}
	}
	if to, err := os.Readlink("/etc/systemd/system/portico.service"); err != nil || to != "/dev/null" {
		t.Errorf("remove did not mask the unit: %q %v", to, err)
	}

	// Purge: what install.md lists is gone, with deb-systemd-helper's state;
	// the portico user stays.
	must(t, "dpkg", "--purge", "portico")
	if _, err := exec.Command("dpkg-query", "--show", "portico").CombinedOutput(); err == nil {
		if st := must(t, "dpkg-query", "--show", "--showformat=${Status}", "portico"); !strings.Contains(st, "not-installed") {
			t.Errorf("after the purge: %q", st)
		}
	}
	for _, p := range []string{"/usr/bin/portico", unitPath, "/etc/portico", store, "/usr/share/man/man8/portico.8.gz",
		"/usr/share/doc/portico", "/usr/share/lintian/overrides/portico", "/usr/share/snmp/mibs/PORTICO-MIB.txt",
		wants, "/etc/systemd/system/portico.service", "/var/lib/systemd/deb-systemd-helper-enabled/portico.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-masked/portico.service"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("purge left %s", p)
		}
	}
	if _, err := user.Lookup("portico"); err != nil {
		t.Errorf("purge removed the portico user, which install.md says stays: %v", err)
	}
}

// unitKeys reads a unit file's Key=Value lines; a repeated key keeps the last value.
func unitKeys(unit string) map[string]string {
	keys := map[string]string{}
	for _, l := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && !strings.HasPrefix(l, "#") {
			keys[k] = v
		}
	}
	return keys
}
