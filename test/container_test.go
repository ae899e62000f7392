package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestContainerImage builds the image with packaging/container/build.sh
// (podman, FROM scratch: no registry), checks its configuration and files,
// and serves it:
//   - with `podman run` when podman can run containers on this machine;
//   - else (podman builds but its runtime refuses, as on a host without
//     the cgroup or rlimit privileges crun needs) the test says why and
//     starts the image's own files instead: the image's root, mounted
//     read-only by podman, with a fresh /data bound in, chroot'ed as the
//     image's user 10001, so the image is still shown to hold everything
//     the binary needs. A podman that claims to run a container and then
//     does not serve fails the test.
//
// Either way /readyz must answer 200 over HTTPS from the image's default
// configuration and command.
func TestContainerImage(t *testing.T) {
	testpeer.Require(t, "podman", "curl", "unshare", "chroot", "mount")
	testpeer.LockNetwork(t)
	tag := fmt.Sprintf("localhost/portico-test:%d", os.Getpid())
	cmd := exec.Command("packaging/container/build.sh", tag)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", tag).Run() })

	out, err := exec.Command("podman", "image", "inspect", tag, "--format", "{{json .Config}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	var ic struct {
		User         string
		ExposedPorts map[string]struct{}
		Entrypoint   []string
		Cmd          []string
		Volumes      map[string]struct{}
	}
	if err := json.Unmarshal(out, &ic); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if ic.User != "10001:10001" {
		t.Errorf("user %q, want the unprivileged 10001:10001", ic.User)
	}
	if _, ok := ic.Volumes["/data"]; !ok {
		t.Errorf("no /data volume: %v", ic.Volumes)
	}
	for _, p := range []string{"9443/tcp", "5060/udp", "5061/tcp", "3478/udp", "443/tcp"} {
		if _, ok := ic.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed: %v", p, ic.ExposedPorts)
		}
	}
	if strings.Join(append(ic.Entrypoint, ic.Cmd...), " ") != "/usr/bin/portico serve --config /etc/portico/portico.yaml --data /data" {
		t.Errorf("command %v %v", ic.Entrypoint, ic.Cmd)
	}

	root, err := exec.Command("podman", "image", "mount", tag).Output()
	if err != nil {
		t.Fatalf("podman image mount: %v", err)
	}
	t.Cleanup(func() { exec.Command("podman", "image", "unmount", tag).Run() })
	mnt := strings.TrimSpace(string(root))
	passwd, _ := os.ReadFile(filepath.Join(mnt, "etc/passwd"))
	if !strings.Contains(string(passwd), "portico:x:10001:10001:") {
		t.Errorf("/etc/passwd has no portico user: %q", passwd)
	}
	for _, f := range []string{"usr/bin/portico", "etc/portico/portico.yaml", "etc/group"} {
		if _, err := os.Stat(filepath.Join(mnt, f)); err != nil {
			t.Errorf("image lacks /%s: %v", f, err)
		}
	}

	mgmt := "127.0.0.1:9443" // the image's configuration: 0.0.0.0:9443
	if listening(9443) {
		t.Fatalf("port 9443 is taken on this machine; the image's configuration listens there")
	}
	name := fmt.Sprintf("portico-test-%d", os.Getpid())
	probe := exec.Command("podman", "run", "--rm", "--network", "host", tag, "version")
	var serve *exec.Cmd
	if pout, perr := probe.CombinedOutput(); perr != nil {
		t.Logf("podman cannot run containers here (%v: %s); serving the image's files with chroot instead", perr, strings.TrimSpace(string(pout)))
		if !strings.Contains(string(pout), "OCI") {
			t.Fatalf("podman run failed for a reason other than its runtime: %s", pout)
		}
		data := t.TempDir()
		if err := os.Chown(data, 10001, 10001); err != nil {
			t.Fatal(err)
		}
		serve = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount --bind "$1" "$2/data" && exec chroot --userspec=10001:10001 "$2" /usr/bin/portico serve --config /etc/portico/portico.yaml --data /data`,
			"sh", data, mnt)
	} else {
		serve = exec.Command("podman", "run", "--rm", "--name", name, "--network", "host", tag)
		t.Cleanup(func() { exec.Command("podman", "rm", "-f", name).Run() })
	}
	serve.Env = append(os.Environ(), "PORTICO_ADMIN_PASSWORD="+adminPassword)
	p := startProcess(t, serve)
	logs := p.out
	p.waitOK(t, "https://"+mgmt+"/readyz", 90*time.Second)
	if code, err := exec.Command("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "https://"+mgmt+"/readyz").Output(); err != nil || string(code) != "200" {
		t.Errorf("curl /readyz: %s, %v", code, err)
	}
	if !strings.Contains(logs.String(), "first start") {
		t.Errorf("no first-start admin message from the image\n%s", logs.String())
	}
}
