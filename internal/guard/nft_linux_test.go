//go:build linux

package guard

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
	"golang.org/x/sys/unix"
)

// testNetns makes a network namespace with loopback up, removed at the
// end, and returns its file descriptor.
func testNetns(t *testing.T) int {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a network namespace")
	}
	testpeer.LockNetwork(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) for a network namespace")
	}
	name := fmt.Sprintf("portico-guard-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// inNetns runs f on a thread inside the namespace: sockets f opens live there.
func inNetns(t *testing.T, fd int, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread dies with the goroutine: never reused in the namespace
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		f()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestNFTSetDropsInKernel: a guard with the nftables set, in a namespace
// of the test's own: a blocked source's datagrams never reach the socket,
// an unblocked source's do; unblocking and Close clean up.
func TestNFTSetDropsInKernel(t *testing.T) {
	fd := testNetns(t)
	ks, err := NewNFTSet(fd)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{}, Deps{Logger: slog.New(slog.DiscardHandler), Kernel: ks})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done; g.Close() }()

	var srv, bad, good net.PacketConn
	inNetns(t, fd, func() {
		srv, _ = net.ListenPacket("udp", "127.0.0.1:0")
		bad, _ = net.ListenPacket("udp", "127.0.0.2:0")
		good, _ = net.ListenPacket("udp", "127.0.0.3:0")
	})
	if srv == nil || bad == nil || good == nil {
		t.Fatal("sockets in the namespace")
	}
	defer srv.Close()
	defer bad.Close()
	defer good.Close()

	block := netip.MustParsePrefix("127.0.0.2/32")
	g.Block(block, time.Hour, "test")
	v6 := netip.MustParsePrefix("2001:db8:1:2::/64")
	g.Block(v6, time.Hour, "test")
	for _, p := range []netip.Prefix{block, v6} {
		waitKernel(t, ks, p, true)
	}
	bad.WriteTo([]byte("blocked"), srv.LocalAddr())
	good.WriteTo([]byte("allowed"), srv.LocalAddr())
	buf := make([]byte, 64)
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := srv.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "allowed" {
		t.Fatalf("first datagram %q from %v (%v): the blocked one got through", buf[:n], from, err)
	}
	if err := g.Unblock(block); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, ks, block, false)
	bad.WriteTo([]byte("again"), srv.LocalAddr())
	n, _, err = srv.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "again" {
		t.Fatalf("after unblock: %q %v", buf[:n], err)
	}
}

// waitKernel waits until the guard's goroutine has applied p's change.
func waitKernel(t *testing.T, ks *NFTSet, p netip.Prefix, want bool) {
	t.Helper()
	for i := 0; ; i++ {
		got, err := ks.Contains(p)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		if i == 1000 {
			t.Fatalf("kernel set holds %s: %v, want %v", p, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
