// Package testpeer lets tests demand the real third-party peers they run
// against (sipp, kamailio, tshark, coturn, PostgreSQL ...).
//
// Under `go test -short` a test that needs a peer is skipped. In a full run
// (`make test`, CI) a missing peer is a failure, never a silent skip: the
// test script installs every peer first, so absence means a broken setup.
package testpeer

import (
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"testing"
)

// Require returns the absolute path of each named program, skipping the test
// under -short and failing it when a program is missing in a full run.
func Require(t testing.TB, programs ...string) []string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs real peers %v; skipped under -short", programs)
	}
	paths := make([]string, 0, len(programs))
	for _, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("peer %q not installed (run scripts/install-test-deps.sh): %v", p, err)
		}
		paths = append(paths, path)
	}
	return paths
}

// FreePort returns a currently free TCP+UDP port on 127.0.0.1. Another process
// may take it before the caller binds it; tests that can, should bind port 0.
func FreePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", itoa(port)))
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("free port: none found after 50 tries")
	return 0
}

// FreePorts returns the first of n consecutive ports that are currently free
// for TCP and UDP on 127.0.0.1, for peers that bind neighbours of the port
// they are given (baresip binds SIP/TLS on its SIP port + 1). The block is
// drawn at random from 20000-29999, below the kernel's ephemeral range, so
// it does not race with the ports the kernel hands out for port 0.
func FreePorts(t testing.TB, n int) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		base := 20000 + rand.IntN(10000-n)
		ok := true
		var open []io.Closer
		for p := base; p < base+n && ok; p++ {
			addr := net.JoinHostPort("127.0.0.1", itoa(p))
			l, err := net.Listen("tcp", addr)
			if err != nil {
				ok = false
				break
			}
			open = append(open, l)
			u, err := net.ListenPacket("udp", addr)
			if err != nil {
				ok = false
				break
			}
			open = append(open, u)
		}
		for _, c := range open {
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("free ports: no %d consecutive free ports after 100 tries", n)
	return 0
}

func itoa(n int) string {
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}
