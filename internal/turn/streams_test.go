package turn

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/portico-edge/portico/internal/connlimit/connlimittest"
)

// stunBinding sends a Binding request over c and reads the answer.
func stunBinding(c net.Conn) error {
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := c.Write(req.Raw); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	_, err := c.Read(make([]byte, 1500))
	return err
}

// closedByServer reports whether the server closed c (a read that ends in
// EOF or a reset, not in the test's deadline).
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 64))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// serveListener serves cfg on l alone and returns the server.
func serveListener(t *testing.T, cfg Config, l net.Listener) *Server {
	t.Helper()
	s, err := New(cfg, Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), nil, l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v", err)
		}
	})
	waitServing(t, s)
	return s
}

func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A TCP listener whose accepts fail the way a process out of descriptors
// or buffers does keeps serving once accepts succeed again.
func TestStreamListenerSurvivesAcceptErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ECONNABORTED} {
		t.Run(errno.Error(), func(t *testing.T) {
			fl := &connlimittest.FailingListener{Listener: loopbackListener(t), Errno: errno, N: 5}
			serveListener(t, testConfig(), fl)
			c, err := net.Dial("tcp", fl.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := stunBinding(c); err != nil {
				t.Fatalf("no answer after %d failed accepts: %v", 5, err)
			}
		})
	}
}

// A listener whose accepts keep failing, or that stopped accepting, is
// reported (readiness).
func TestStreamListenerStatus(t *testing.T) {
	t.Run("accept failing", func(t *testing.T) {
		fl := &connlimittest.FailingListener{Listener: loopbackListener(t), Errno: syscall.EMFILE, N: 1 << 30}
		s := serveListener(t, testConfig(), fl)
		waitFor(t, func() bool {
			st := s.ListenerStatus()
			return len(st) == 1 && strings.Contains(st[0].Err, "accept failing") && strings.Contains(st[0].Err, "too many open files")
		})
	})
	t.Run("closed under the server", func(t *testing.T) {
		l := loopbackListener(t)
		s := serveListener(t, testConfig(), l)
		if st := s.ListenerStatus(); len(st) != 1 || st[0].Err != "" || st[0].Transport != "tcp" || st[0].Address != l.Addr().String() {
			t.Fatalf("status of a serving listener = %+v", st)
		}
		l.Close()
		waitFor(t, func() bool {
			st := s.ListenerStatus()
			return len(st) == 1 && strings.HasPrefix(st[0].Err, "not serving")
		})
	})
}

// listen.max_conns_per_source refuses one source's surplus connections,
// not another source's.
func TestStreamMaxConnsPerSource(t *testing.T) {
	cfg := testConfig()
	cfg.Listen.MaxConnsPerSource = 2
	l := loopbackListener(t)
	serveListener(t, cfg, l)
	dial := func(from string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", l.Addr().String())
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	binding := func(from string) error {
		c, err := dial(from)
		if err != nil {
			return err
		}
		return stunBinding(c)
	}
	for i := range 2 {
		if err := binding("127.0.0.1"); err != nil {
			t.Fatalf("connection %d within the cap: %v", i+1, err)
		}
	}
	// The refusal is a reset, which may already fail the dial.
	if c, err := dial("127.0.0.1"); err == nil && !closedByServer(c) {
		t.Error("third connection from one source was served")
	}
	if err := binding("127.0.0.2"); err != nil {
		t.Errorf("another source refused: %v", err)
	}
}

// A connection that sends nothing is closed after listen.handshake_timeout
// even when the idle timeout would keep it; one that sent its first STUN
// message is not.
func TestStreamHandshakeTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.Listen.HandshakeTimeout = 100 * time.Millisecond
	cfg.Listen.IdleTimeout = -1
	l := loopbackListener(t)
	serveListener(t, cfg, l)
	talker, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	if err := stunBinding(talker); err != nil {
		t.Fatal(err)
	}
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if !closedByServer(silent) {
		t.Fatal("silent connection kept past the handshake timeout")
	}
	if err := stunBinding(talker); err != nil {
		t.Errorf("established connection closed: %v", err)
	}
}
