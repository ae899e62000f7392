package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestVethNet builds the -netns topology, sends a datagram from the
// generator's A socket straight to its B socket through the middle
// namespace's IP forwarding (the "kernel" system), checks that BPF
// statistics are on meanwhile, and that removing it leaves no namespace
// behind and restores kernel.bpf_stats_enabled.
func TestVethNet(t *testing.T) {
	testpeer.Require(t, "ip", "ethtool", "sysctl")
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	before, err := os.ReadFile(bpfStatsSysctl)
	if err != nil {
		t.Fatal(err)
	}
	var names [3]string
	for i, role := range []string{"outside", "relay", "inside"} {
		names[i] = fmt.Sprintf("portico-bt-%s-%d", role, os.Getpid())
	}
	v, err := newVethNet(names, true)
	t.Cleanup(v.remove)
	if err != nil {
		t.Fatal(err)
	}
	veth = v
	t.Cleanup(func() { veth = nil })
	if b, _ := os.ReadFile(bpfStatsSysctl); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("kernel.bpf_stats_enabled is %q during the run, want 1", b)
	}

	a, err := listenSide(0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := listenSide(1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := a.LocalAddr().(*net.UDPAddr).AddrPort().Addr(); got != vethA {
		t.Errorf("A socket on %v, want %v", got, vethA)
	}
	msg := []byte("through the relay namespace")
	buf := make([]byte, 100)
	var n int
	for try := 0; try < 20 && n == 0; try++ {
		a.WriteToUDPAddrPort(msg, b.LocalAddr().(*net.UDPAddr).AddrPort())
		b.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, _, _ = b.ReadFromUDPAddrPort(buf)
	}
	if !bytes.Equal(buf[:n], msg) {
		t.Fatalf("B received %q, want %q", buf[:n], msg)
	}

	v.remove()
	v.remove() // a second call does nothing
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.Contains(string(out), name) {
			t.Errorf("namespace %s left after remove", name)
		}
	}
	if after, _ := os.ReadFile(bpfStatsSysctl); !bytes.Equal(after, before) {
		t.Errorf("kernel.bpf_stats_enabled is %q after remove, was %q", after, before)
	}
}
