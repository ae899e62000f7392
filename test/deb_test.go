package test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestDebPackage builds the Debian package twice (two versions) with the script
// behind `make deb`, inspects it with dpkg-deb and systemd-analyze, and installs,
// upgrades, removes and purges it with dpkg in a throwaway root (dpkg --root with
// chrootless maintainer scripts, which honour DPKG_ROOT). The real / of the
// machine is never installed into: the test checks that /etc/passwd is unchanged.
// The installed binary then runs as the package's portico user with only
// CAP_NET_BIND_SERVICE (setpriv), and without it to see the error name it.
func TestDebPackage(t *testing.T) {
	testpeer.Require(t, "dpkg", "dpkg-deb", "systemd-analyze", "setpriv", "useradd", "groupadd", "sh")
	if os.Geteuid() != 0 {
		t.Fatal("the package test installs into a throwaway root with dpkg and needs root")
	}
	work := t.TempDir()
	// The portico user must reach the installed binary and data under work.
	for d := work; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	debA := buildDeb(t, filepath.Join(work, "dist"), "1.0.0")
	debB := buildDeb(t, filepath.Join(work, "dist"), "1.0.1")

	t.Run("fields", func(t *testing.T) {
		got := must(t, "dpkg-deb", "--field", debA, "Package", "Version", "Architecture")
		arch := strings.TrimSpace(must(t, "dpkg", "--print-architecture"))
		for _, want := range []string{"Package: portico", "Version: 1.0.0", "Architecture: " + arch} {
			if !strings.Contains(got, want) {
				t.Errorf("control lacks %q:\n%s", want, got)
			}
		}
		if base := filepath.Base(debA); base != "portico_1.0.0_"+arch+".deb" {
			t.Errorf("package file name %s", base)
		}
		if c := strings.TrimSpace(must(t, "dpkg-deb", "--info", debA, "conffiles")); c != "/etc/portico/portico.yaml" {
			t.Errorf("conffiles = %q, want /etc/portico/portico.yaml", c)
		}
	})

	// lintian, Debian's package checker: no error and no warning. The one
	// override the package ships (a static Go binary) carries its reason.
	t.Run("lintian", func(t *testing.T) {
		lintian := testpeer.Require(t, "lintian")[0]
		out, err := exec.Command(lintian, "--fail-on", "error,warning", "--tag-display-limit", "0", debA).CombinedOutput()
		var tags []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
				tags = append(tags, l)
			}
		}
		if err != nil || len(tags) > 0 {
			t.Errorf("lintian: %v\n%s", err, out)
		}
	})

	t.Run("contents", func(t *testing.T) {
		want := map[string]string{
			"./usr/share/doc/portico/changelog.gz":     "-rw-r--r--",
			"./usr/share/lintian/overrides/portico":    "-rw-r--r--",
			"./usr/bin/portico":                        "-rwxr-xr-x",
			"./etc/portico/portico.yaml":               "-rw-r--r--",
			"./usr/lib/systemd/system/portico.service": "-rw-r--r--",
			"./usr/share/man/man8/portico.8.gz":        "-rw-r--r--",
			"./usr/share/doc/portico/install.md":       "-rw-r--r--",
			"./usr/share/doc/portico/copyright":        "-rw-r--r--",
			"./usr/share/snmp/mibs/PORTICO-MIB.txt":    "-rw-r--r--",
		}
		for _, line := range strings.Split(strings.TrimSpace(must(t, "dpkg-deb", "--contents", debA)), "\n") {
			f := strings.Fields(line)
			if len(f) < 6 {
				t.Fatalf("contents line %q", line)
			}
			mode, owner, path := f[0], f[1], f[5]
			if owner != "root/root" {
				t.Errorf("%s owned by %s, want root/root", path, owner)
			}
			if m, ok := want[path]; ok {
				if mode != m {
					t.Errorf("%s mode %s, want %s", path, mode, m)
				}
				delete(want, path)
			}
		}
		for p := range want {
			t.Errorf("package lacks %s", p)
		}
	})

	ctrl, data := filepath.Join(work, "control"), filepath.Join(work, "data")
	must(t, "dpkg-deb", "--control", debA, ctrl)
	must(t, "dpkg-deb", "--extract", debA, data)

	t.Run("maintainer-scripts", func(t *testing.T) {
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			must(t, "sh", "-n", filepath.Join(ctrl, s))
		}
	})

	t.Run("unit", func(t *testing.T) {
		unit, err := os.ReadFile(filepath.Join(data, "usr/lib/systemd/system/portico.service"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"ExecStart=/usr/bin/portico serve --config /etc/portico/portico.yaml --data /var/lib/portico\n",
			"User=portico\n", "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_ADMIN CAP_NET_RAW CAP_BPF\n",
			"NoNewPrivileges=yes\n", "ProtectSystem=strict\n", "ReadWritePaths=/var/lib/portico\n",
			"PrivateTmp=yes\n", "StateDirectory=portico\n", "ExecReload=/bin/kill -HUP $MAINPID\n",
			"Type=notify\n", "WatchdogSec=30s\n",
		} {
			if !bytes.Contains(unit, []byte(want)) {
				t.Errorf("unit lacks %q", want)
			}
		}
		// systemd-analyze checks that ExecStart is executable: point it at the extracted binary.
		dir := t.TempDir()
		fixed := bytes.ReplaceAll(unit, []byte("=/usr/bin/portico "), []byte("="+filepath.Join(data, "usr/bin/portico")+" "))
		if err := os.WriteFile(filepath.Join(dir, "portico.service"), fixed, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("systemd-analyze", "--man=no", "verify", filepath.Join(dir, "portico.service")).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("man-and-config", func(t *testing.T) {
		bin := filepath.Join(data, "usr/bin/portico")
		if out := must(t, bin, "config", "validate", filepath.Join(data, "etc/portico/portico.yaml")); !strings.Contains(out, "valid") {
			t.Errorf("config validate: %s", out)
		}
		man := must(t, "sh", "-c", "gzip -dc "+filepath.Join(data, "usr/share/man/man8/portico.8.gz"))
		help := must(t, bin, "help")
		cmds := regexp.MustCompile(`(?m)^  ([a-z]+) +\S`).FindAllStringSubmatch(help[strings.Index(help, "Available Commands:"):], -1)
		if len(cmds) < 5 {
			t.Fatalf("portico help lists %d commands:\n%s", len(cmds), help)
		}
		for _, c := range cmds {
			if c[1] != "help" && !strings.Contains(man, "\n.B "+c[1]+"\n") {
				t.Errorf("man page lacks the %s command", c[1])
			}
		}
	})

	hostPasswd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	root := throwawayRoot(t, filepath.Join(work, "root"))
	dpkg := func(args ...string) string {
		return must(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends"}, args...)...)
	}
	conf := filepath.Join(root, "etc/portico/portico.yaml")
	store := filepath.Join(root, "var/lib/portico")

	// Install: the system user, the data directory and the configuration's group.
	dpkg("--install", debA)
	uid, gid := passwdIDs(t, root)
	if uid <= 0 || uid >= 1000 || gid <= 0 || gid >= 1000 {
		t.Errorf("portico uid %d gid %d: want a system user and group", uid, gid)
	}
	if p := readFile(t, filepath.Join(root, "etc/passwd")); !strings.Contains(p, ":/var/lib/portico:/usr/sbin/nologin\n") {
		t.Errorf("portico's home and shell:\n%s", p)
	}
	checkOwner(t, store, 0o700|os.ModeDir, uid, gid)
	checkOwner(t, conf, 0o640, 0, gid)

	// The installed binary, as the portico user with only CAP_NET_BIND_SERVICE,
	// serves the installed configuration on a port below 1024.
	port := privilegedPort(t)
	cfg := strings.Replace(readFile(t, conf), "listen: 0.0.0.0:9443", fmt.Sprintf("listen: 127.0.0.1:%d", port), 1)
	testConf := filepath.Join(work, "test.yaml")
	if err := os.WriteFile(testConf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	asPortico := []string{"setpriv", "--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(gid), "--clear-groups"}
	withCap := append(asPortico[:len(asPortico):len(asPortico)], "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service")
	serve := []string{filepath.Join(root, "usr/bin/portico"), "serve", "--config", testConf, "--data", store}

	t.Run("serve-as-portico", func(t *testing.T) {
		p := startProcess(t, exec.Command(withCap[0], append(withCap[1:], serve...)...))
		out := p.out
		p.waitOK(t, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), 60*time.Second)
		if !strings.Contains(out.String(), `created user "admin" with password`) {
			t.Errorf("first start does not show the admin password:\n%s", out.String())
		}
		if _, err := os.Stat(filepath.Join(store, "portico.db")); err != nil {
			t.Errorf("store not in the data directory: %v", err)
		}
	})

	t.Run("errors-name-the-fix", func(t *testing.T) {
		out, err := exec.Command(asPortico[0], append(asPortico[1:], serve...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), fmt.Sprintf("management.listen: listen tcp 127.0.0.1:%d", port)) ||
			!strings.Contains(string(out), "CAP_NET_BIND_SERVICE") {
			t.Errorf("without the capability: %v\n%s", err, out)
		}
		ro := filepath.Join(work, "readonly")
		if err := os.Mkdir(ro, 0o755); err != nil {
			t.Fatal(err)
		}
		args := append(asPortico[1:len(asPortico):len(asPortico)], serve[:4]...)
		out, err = exec.Command(asPortico[0], append(args, "--data", filepath.Join(ro, "data"))...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--data "+filepath.Join(ro, "data")) || !strings.Contains(string(out), "permission denied") ||
			!strings.Contains(string(out), "give --data a directory that") || !strings.Contains(string(out), "can write") {
			t.Errorf("unwritable data directory: %v\n%s", err, out)
		}
	})

	// Upgrade: a changed configuration and the store stay; the user is not added twice.
	if err := os.WriteFile(conf, []byte(readFile(t, conf)+"# changed by the administrator\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	dpkg("--install", debB)
	if !strings.Contains(dpkg("--status", "portico"), "Version: 1.0.1") {
		t.Error("upgrade did not install 1.0.1")
	}
	if !strings.HasSuffix(readFile(t, conf), "# changed by the administrator\n") {
		t.Error("upgrade replaced the changed configuration")
	}
	if n := strings.Count(readFile(t, filepath.Join(root, "etc/passwd")), "\nportico:"); n != 1 {
		t.Errorf("%d portico users after the upgrade", n)
	}
	if u, g := passwdIDs(t, root); u != uid || g != gid {
		t.Errorf("upgrade changed portico's ids to %d:%d", u, g)
	}
	checkOwner(t, filepath.Join(store, "portico.db"), 0o600, uid, gid)

	// Remove keeps the store and the configuration; purge deletes both.
	dpkg("--remove", "portico")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/portico")); err == nil {
		t.Error("remove left the binary")
	}
	for _, p := range []string{filepath.Join(store, "portico.db"), conf} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("remove did not keep %s: %v", p, err)
		}
	}
	dpkg("--purge", "portico")
	for _, p := range []string{store, filepath.Join(root, "etc/portico")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("purge left %s", p)
		}
	}

	if after, err := os.ReadFile("/etc/passwd"); err != nil || !bytes.Equal(after, hostPasswd) {
		t.Fatalf("the machine's /etc/passwd changed during the test (%v)", err)
	}
}

// buildDeb runs the script behind `make deb` from the repository root.
func buildDeb(t *testing.T, out, version string) string {
	t.Helper()
	cmd := exec.Command("packaging/deb/build.sh", out)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VERSION="+version, "DEB_VERSION="+version)
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	return strings.TrimSpace(string(b))
}

// throwawayRoot makes the least a root needs for dpkg --root and the
// maintainer scripts: a dpkg database and user databases holding only root.
func throwawayRoot(t *testing.T, root string) string {
	t.Helper()
	files := map[string]string{
		"etc/passwd":             "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":              "root:x:0:\n",
		"etc/shadow":             "root:*:20000:0:99999:7:::\n",
		"etc/gshadow":            "root:*::\n",
		"var/lib/dpkg/status":    "",
		"var/lib/dpkg/available": "",
	}
	if defs, err := os.ReadFile("/etc/login.defs"); err == nil {
		files["etc/login.defs"] = string(defs)
	}
	for _, d := range []string{"etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "usr/sbin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// passwdIDs reads the portico user's uid and gid from root's user database.
func passwdIDs(t *testing.T, root string) (uid, gid int) {
	t.Helper()
	for _, line := range strings.Split(readFile(t, filepath.Join(root, "etc/passwd")), "\n") {
		if f := strings.Split(line, ":"); len(f) == 7 && f[0] == "portico" {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			return uid, gid
		}
	}
	t.Fatal("no portico user in the installed root")
	return 0, 0
}

func checkOwner(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: %v %d:%d, want %v %d:%d", path, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
}

// privilegedPort returns a port below 1024 that is free on 127.0.0.1.
func privilegedPort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := 600 + rand.IntN(400)
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port below 1024")
	return 0
}

// must runs a command that has to succeed and returns its output.
func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
