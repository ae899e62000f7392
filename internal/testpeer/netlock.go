package testpeer

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// LockNetwork serialises, across the test binaries `go test ./...` runs at
// once, the tests that change the host's network (network namespaces,
// veth pairs, bridges) with the tests that drive Chromium: Chromium
// aborts a page load with ERR_NETWORK_CHANGED when an interface appears
// or goes while it loads. The lock is an exclusive flock on a file in the
// temporary directory, held until the test ends.
func LockNetwork(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "portico-test-network.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("network lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("network lock: %v", err)
	}
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
