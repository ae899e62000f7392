//go:build linux

package media

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFastPathGenerated regenerates the eBPF object and its Go loader
// from bpf/fastpath.c with bpf2go and fails when they differ from the
// committed ones. Only the regeneration needs clang: without it the check
// is skipped, never the fast path's tests.
func TestFastPathGenerated(t *testing.T) {
	if _, err := exec.LookPath("clang"); err != nil {
		t.Skip("clang not installed: the committed eBPF object is not regenerated")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "github.com/cilium/ebpf/cmd/bpf2go",
		"-go-package", "media", "-output-dir", dir,
		"-tags", "linux", "-target", "bpfel", "-no-global-types", "fastpath", "bpf/fastpath.c",
		"--", "-I/usr/include/x86_64-linux-gnu", "-O2", "-Wall", "-Werror")
	cmd.Env = append(os.Environ(), "GOPACKAGE=media")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bpf2go: %v\n%s", err, out)
	}
	for _, name := range []string{"fastpath_bpfel.go", "fastpath_bpfel.o"} {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what bpf/fastpath.c generates: run go generate ./internal/media/ and commit", name)
		}
	}
}
