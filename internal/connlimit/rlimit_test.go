//go:build linux

package connlimit

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

const childEnv = "CONNLIMIT_TEST_CHILD"

// TestReserveUnderLowLimit runs in a child process limited to 128
// descriptors (so this process keeps its own): a guarded listener is
// flooded with connections from the child itself until it refuses; then
// the child can still open a file and accept on an unguarded listener (the
// management one), and the guarded listener accepts again once the flood
// is released.
func TestReserveUnderLowLimit(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		if err := lowLimitChild(); err != nil {
			fmt.Println("CHILD FAIL:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReserveUnderLowLimit$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func lowLimitChild() error {
	lim := syscall.Rlimit{Cur: 128, Max: 128}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	l := Wrap(inner, Config{Name: "guarded", Descriptors: NewReserve(32)}, Deps{})
	defer l.Close()
	mgmt, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer mgmt.Close()
	accepted := make(chan net.Conn, 256)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	// Each connection costs two descriptors here (both ends). Dial until
	// one is refused: the client end is reset instead of kept.
	var clients, servers []net.Conn
	refused := false
	for i := 0; i < 100 && !refused; i++ {
		c, err := net.DialTimeout("tcp", inner.Addr().String(), 2*time.Second)
		if errors.Is(err, syscall.ECONNRESET) {
			refused = true // reset before connect returned
			break
		}
		if err != nil {
			return fmt.Errorf("dial %d: %w (the table filled up: the reserve did not hold)", i, err)
		}
		clients = append(clients, c)
		select {
		case s := <-accepted:
			servers = append(servers, s)
		case <-time.After(2 * time.Second):
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil {
				return fmt.Errorf("connection %d neither accepted nor refused", i)
			}
			refused = true
		}
	}
	if !refused {
		return fmt.Errorf("no connection refused with %d held under a limit of 128", len(servers))
	}
	// The reserve is there: a file and a management connection both work.
	f, err := os.Open(os.DevNull)
	if err != nil {
		return fmt.Errorf("open a file while refusing: %w", err)
	}
	f.Close()
	mc, err := net.Dial("tcp", mgmt.Addr().String())
	if err != nil {
		return fmt.Errorf("dial management while refusing: %w", err)
	}
	sc, err := mgmt.Accept()
	if err != nil {
		return fmt.Errorf("management accept while refusing: %w", err)
	}
	sc.Close()
	mc.Close()
	for _, c := range append(clients, servers...) {
		c.Close()
	}
	// Released: the guarded listener admits again (after the next count).
	time.Sleep(2 * refreshAge)
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	select {
	case s := <-accepted:
		s.Close()
	case <-time.After(10 * time.Second):
		return fmt.Errorf("not accepting again after the flood was released (%d held before)", len(servers))
	}
	return nil
}
