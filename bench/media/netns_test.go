package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestVethNet builds the -netns topology, sends a datagram from the
// generator's A socket to its B socket through the middle namespace's IP
// forwarding (the "kernel" system) and over the direct veth ("direct"),
// each arriving from the address of its path, checks that BPF
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

	a, atA, err := listenSide(0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, atB, err := listenSide(1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if atA.Addr() != vethA || atB.Addr() != vethB {
		t.Errorf("sockets reached at %v and %v, want %v and %v", atA, atB, vethA, vethB)
	}
	direct := directAddrs([2]netip.AddrPort{atA, atB})
	for _, tc := range []struct {
		name     string
		to, from netip.AddrPort
	}{
		{"kernel", atB, atA},             // routed through the relay namespace
		{"direct", direct[1], direct[0]}, // over the direct veth
	} {
		msg := []byte(tc.name)
		buf := make([]byte, 100)
		var n int
		var src netip.AddrPort
		for try := 0; try < 20 && n == 0; try++ {
			a.WriteToUDPAddrPort(msg, tc.to)
			b.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			n, src, _ = b.ReadFromUDPAddrPort(buf)
		}
		if !bytes.Equal(buf[:n], msg) || src != tc.from {
			t.Errorf("%s: B received %q from %v, want %q from %v", tc.name, buf[:n], src, msg, tc.from)
		}
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
