package connlimit

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/connlimit/connlimittest"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// dialFrom connects to l from the loopback address src. It returns nil
// when the connection was reset before connect returned (refused at once).
func dialFrom(t *testing.T, l net.Listener, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", l.Addr().String())
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer waits (boundedly) for c to be closed by the other end.
func closedByPeer(c net.Conn) bool {
	if c == nil {
		return true
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// stillOpen reports whether c has not been closed by the other end (a
// short read times out instead).
func stillOpen(c net.Conn) bool {
	if c == nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// acceptAll runs l's accept loop, sending what it accepts to the channel.
func acceptAll(t *testing.T, l *Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(ch)
		for c := range ch {
			c.Close()
		}
	})
	return ch
}

func TestAcceptRetriesErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		errno syscall.Errno
	}{
		{"EMFILE", syscall.EMFILE},
		{"ENFILE", syscall.ENFILE},
		{"ENOBUFS", syscall.ENOBUFS},
		{"ECONNABORTED", syscall.ECONNABORTED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			fl := &connlimittest.FailingListener{Listener: listen(t), N: 3, Errno: tc.errno}
			l := Wrap(fl, Config{Name: "test"}, Deps{Registerer: reg})
			defer l.Close()
			client := dialFrom(t, l, "127.0.0.1")
			c, err := l.Accept()
			if err != nil {
				t.Fatalf("Accept returned %v; want the connection after retries", err)
			}
			defer c.Close()
			if c.RemoteAddr().String() != client.LocalAddr().String() {
				t.Errorf("accepted %v, want %v", c.RemoteAddr(), client.LocalAddr())
			}
			if n := testutil.ToFloat64(l.m.acceptErrors); n != 3 {
				t.Errorf("accept errors counted %v, want 3", n)
			}
			if err := l.Err(); err != nil {
				t.Errorf("Err after a successful accept = %v", err)
			}
		})
	}
}

func TestAcceptFailingShowsErrAndCloseEndsIt(t *testing.T) {
	fl := &connlimittest.FailingListener{Listener: listen(t), N: 1 << 30, Errno: syscall.EMFILE}
	l := Wrap(fl, Config{Name: "test"}, Deps{})
	res := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		res <- err
	}()
	for l.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(l.Err(), syscall.EMFILE) {
		t.Errorf("Err = %v, want EMFILE", l.Err())
	}
	l.Close()
	if err := <-res; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	l.Close() // twice is fine
}

func TestClosedUnderneathEndsAccept(t *testing.T) {
	inner := listen(t)
	l := Wrap(inner, Config{Name: "test"}, Deps{})
	inner.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a listener closed underneath = %v, want net.ErrClosed", err)
	}
}

func TestCaps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		sources []string // dialled in order
		refused []bool   // per source: refused by the cap
		reason  string
	}{
		{
			name:    "per source",
			cfg:     Config{MaxConnsPerSource: 2},
			sources: []string{"127.0.0.5", "127.0.0.5", "127.0.0.5", "127.0.0.6"},
			refused: []bool{false, false, true, false},
			reason:  ReasonPerSource,
		},
		{
			name:    "total",
			cfg:     Config{MaxConns: 3, MaxConnsPerSource: 2},
			sources: []string{"127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8"},
			refused: []bool{false, false, false, true},
			reason:  ReasonMaxConns,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			tc.cfg.Name = "test"
			l := Wrap(listen(t), tc.cfg, Deps{Registerer: reg})
			accepted := acceptAll(t, l)
			var refused int
			for i, src := range tc.sources {
				c := dialFrom(t, l, src)
				if tc.refused[i] {
					refused++
					if !closedByPeer(c) {
						t.Errorf("connection %d from %s was not refused", i, src)
					}
					continue
				}
				select {
				case <-accepted:
				case <-time.After(10 * time.Second):
					t.Fatalf("connection %d from %s was not accepted", i, src)
				}
			}
			if n := testutil.ToFloat64(l.m.refused(tc.reason)); int(n) != refused {
				t.Errorf("refused %s counted %v, want %d", tc.reason, n, refused)
			}
		})
	}
}

func TestCapFreedByClose(t *testing.T) {
	l := Wrap(listen(t), Config{Name: "test", MaxConnsPerSource: 1}, Deps{})
	accepted := acceptAll(t, l)
	dialFrom(t, l, "127.0.0.5")
	first := <-accepted
	first.Close()
	first.Close() // a second Close must not uncount twice
	dialFrom(t, l, "127.0.0.5")
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("a slot freed by Close was not reused")
	}
	if n := l.Active(); n != 1 {
		t.Errorf("Active = %d, want 1", n)
	}
	third := dialFrom(t, l, "127.0.0.5")
	if !closedByPeer(third) {
		t.Error("double Close freed a second slot")
	}
}

// TestGroupCapsListenersTogether: listeners sharing a Group enforce
// MaxConns and MaxConnsPerSource on their connections together, and a
// slot freed on one listener admits a connection on another.
func TestGroupCapsListenersTogether(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		sources []string // dialled in order, on listeners 0, 1, 2, 0...
		reason  string   // why the last one is refused
	}{
		{"total", Config{MaxConns: 2}, []string{"127.0.0.5", "127.0.0.6", "127.0.0.7"}, ReasonMaxConns},
		{"per source", Config{MaxConns: 10, MaxConnsPerSource: 2}, []string{"127.0.0.5", "127.0.0.5", "127.0.0.5"}, ReasonPerSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGroup()
			var mu sync.Mutex
			var refusals []string
			cfg := tc.cfg
			cfg.Name, cfg.Group = "range", g
			cfg.Refused = func(reason string) {
				mu.Lock()
				defer mu.Unlock()
				refusals = append(refusals, reason)
			}
			reg := prometheus.NewRegistry()
			var ls []*Listener
			var accepted []<-chan net.Conn
			for range 3 {
				l := Wrap(listen(t), cfg, Deps{Registerer: reg})
				ls = append(ls, l)
				accepted = append(accepted, acceptAll(t, l))
			}
			var first net.Conn
			last := len(tc.sources) - 1
			for i, src := range tc.sources[:last] {
				dialFrom(t, ls[i%3], src)
				select {
				case c := <-accepted[i%3]:
					if first == nil {
						first = c
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("connection %d from %s was not accepted", i, src)
				}
			}
			if n := g.Active(); n != last {
				t.Fatalf("group Active = %d, want %d", n, last)
			}
			if n := ls[0].Active(); n != 1 {
				t.Fatalf("listener Active = %d, want its own 1", n)
			}
			// The next one, on a listener that holds none, is beyond the
			// group's cap.
			refused := dialFrom(t, ls[last%3], tc.sources[last])
			if !closedByPeer(refused) {
				t.Fatalf("connection %d on another listener was not refused", last)
			}
			if n := testutil.ToFloat64(ls[last%3].m.refused(tc.reason)); n != 1 {
				t.Errorf("refused %s counted %v, want 1", tc.reason, n)
			}
			mu.Lock()
			if len(refusals) != 1 || refusals[0] != tc.reason {
				t.Errorf("Refused was told %q, want [%s]", refusals, tc.reason)
			}
			mu.Unlock()
			// Closing the first frees its slot for the group.
			first.Close()
			dialFrom(t, ls[last%3], tc.sources[last])
			select {
			case <-accepted[last%3]:
			case <-time.After(10 * time.Second):
				t.Fatal("a slot freed on one listener did not admit a connection on another")
			}
			if n := g.Active(); n != last {
				t.Errorf("group Active = %d, want %d", n, last)
			}
		})
	}
}

func TestSourceKeyIPv6Slash64(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"[2001:db8:1:2::1]:5060", "[2001:db8:1:2:ffff::9]:1"},
		{"[::ffff:192.0.2.1]:1", "192.0.2.1:2"},
	} {
		a, _ := net.ResolveTCPAddr("tcp", tc.a)
		b, _ := net.ResolveTCPAddr("tcp", tc.b)
		if sourceKey(a) != sourceKey(b) {
			t.Errorf("%s and %s count as different sources (%v, %v)", tc.a, tc.b, sourceKey(a), sourceKey(b))
		}
	}
	a, _ := net.ResolveTCPAddr("tcp", "[2001:db8:1:2::1]:1")
	b, _ := net.ResolveTCPAddr("tcp", "[2001:db8:1:3::1]:1")
	if sourceKey(a) == sourceKey(b) {
		t.Error("two /64s count as one source")
	}
}

func TestHandshakeTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := Wrap(listen(t), Config{Name: "test", HandshakeTimeout: 50 * time.Millisecond}, Deps{Registerer: reg})
	accepted := acceptAll(t, l)
	good := dialFrom(t, l, "127.0.0.5")
	gc := <-accepted
	if !l.Established(gc.RemoteAddr().String()) {
		t.Fatal("Established did not find the connection")
	}
	silent := dialFrom(t, l, "127.0.0.6")
	<-accepted
	if !closedByPeer(silent) {
		t.Fatal("a connection never established was not closed")
	}
	// silent was accepted after good and has been closed: good is past its
	// own handshake deadline and must still be open.
	if !stillOpen(good) {
		t.Error("an established connection was closed")
	}
	if n := testutil.ToFloat64(l.m.closed(ReasonHandshake)); n != 1 {
		t.Errorf("handshake timeouts counted %v, want 1", n)
	}
	if n := l.Active(); n != 1 {
		t.Errorf("Active = %d after the timeout, want 1", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	var mu sync.Mutex
	busy := map[string]bool{}
	l := Wrap(listen(t), Config{Name: "test", IdleTimeout: 50 * time.Millisecond, Busy: func(a net.Addr) bool {
		mu.Lock()
		defer mu.Unlock()
		return busy[a.String()]
	}}, Deps{})
	accepted := acceptAll(t, l)
	inUse := dialFrom(t, l, "127.0.0.5")
	mu.Lock()
	busy[inUse.LocalAddr().String()] = true
	mu.Unlock()
	<-accepted
	quiet := dialFrom(t, l, "127.0.0.6")
	<-accepted
	if !closedByPeer(quiet) {
		t.Fatal("an idle connection was not closed")
	}
	if !stillOpen(inUse) {
		t.Fatal("an idle connection Busy said is in use was closed")
	}
	mu.Lock()
	busy[inUse.LocalAddr().String()] = false
	mu.Unlock()
	if !closedByPeer(inUse) {
		t.Error("an idle connection no longer in use was not closed")
	}
}

func TestIdleTrafficKeepsOpen(t *testing.T) {
	l := Wrap(listen(t), Config{Name: "test", IdleTimeout: 2 * time.Second}, Deps{})
	accepted := acceptAll(t, l)
	client := dialFrom(t, l, "127.0.0.5")
	sc := <-accepted
	// The server echoes; the client talks for several idle periods.
	go io.Copy(sc, sc)
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 4)
	for time.Now().Before(deadline) {
		if _, err := client.Write([]byte("\r\n\r\n")); err != nil {
			t.Fatalf("write: %v", err)
		}
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(client, buf); err != nil {
			t.Fatalf("a connection carrying traffic was closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCloseWriteHalfCloses: a relay's half-close passes through the
// wrapper: the peer reads EOF and can still send.
func TestCloseWriteHalfCloses(t *testing.T) {
	l := Wrap(listen(t), Config{Name: "test"}, Deps{})
	accepted := acceptAll(t, l)
	client := dialFrom(t, l, "127.0.0.1")
	sc := <-accepted
	cw, ok := sc.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("accepted connection has no CloseWrite")
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read after CloseWrite: %v, want EOF", err)
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(sc, make([]byte, 1)); err != nil {
		t.Fatalf("the half-closed side no longer reads: %v", err)
	}
	if _, ok := sc.(syscall.Conn); !ok {
		t.Error("accepted connection hides its raw descriptor")
	}
}
