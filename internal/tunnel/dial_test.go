package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestDialService: the server asks the client to connect to destinations
// it names; the client connects only to those inside the service's
// networks and refuses (and counts) any other without connecting.
func TestDialService(t *testing.T) {
	allowedEcho := tcpEcho(t) // on 127.0.0.1
	// A listener outside the allow list that must never be connected to.
	outside, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	var reached atomic.Int32
	go func() {
		for {
			c, err := outside.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			c.Close()
		}
	}()
	s := startServerConfig(t, "127.0.0.1:0", &MemState{}, Config{Services: []Service{
		{Name: "h245", Proto: "tcp"},
		{Name: "web", Proto: "tcp", Listen: "127.0.0.1:0"},
	}})
	c := runEnrolled(t, s, Config{Services: []Service{
		{Name: "h245", Proto: "tcp", Networks: []string{"127.0.0.1/32", "10.0.0.0/8"}},
		{Name: "web", Proto: "tcp", Target: tcpEcho(t)},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	conn, err := s.DialTo(ctx, "h245", netip.MustParseAddrPort(allowedEcho))
	if err != nil {
		t.Fatalf("dial to an allowed destination: %v", err)
	}
	msg := []byte("\x03\x00\x00\x08h245")
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != string(msg) {
		t.Fatalf("dialled connection echoed %q, %v", got, err)
	}
	conn.Close()

	to := netip.MustParseAddrPort(outside.Addr().String())
	if _, err := s.DialTo(ctx, "h245", to); !errors.Is(err, ErrDialRefused) {
		t.Fatalf("dial to %s outside the networks: %v, want ErrDialRefused", to, err)
	}
	// An unreachable allowed destination fails, distinctly.
	closed := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(testpeer.FreePort(t)))
	if _, err := s.DialTo(ctx, "h245", closed); !errors.Is(err, ErrDialFailed) {
		t.Fatalf("dial to a closed port: %v, want ErrDialFailed", err)
	}
	// Only a dial service dials; the client has none toward the server.
	if _, err := s.DialTo(ctx, "web", netip.MustParseAddrPort(allowedEcho)); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("dial on a forward service: %v", err)
	}
	if _, err := c.DialTo(ctx, "h245", netip.MustParseAddrPort(allowedEcho)); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("dial from the delivering end: %v", err)
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the refused destination was connected to %d times", n)
	}
	var h ServiceStats
	for _, x := range c.Stats().Services {
		if x.Name == "h245" {
			h = x
		}
	}
	if h.DialsRefused != 1 || h.FlowsTotal != 1 {
		t.Fatalf("client h245 accounting %+v, want 1 flow and 1 refusal", h)
	}
}

// TestTCPPortRangeService: a TCP service offered on a range of ports
// reaches the port at the same offset in the peer's target range.
func TestTCPPortRangeService(t *testing.T) {
	const n = 3
	tbase := testpeer.FreePorts(t, n)
	for i := 0; i < n; i++ { // each says its own port
		tcpServer(t, "127.0.0.1:"+strconv.Itoa(tbase+i), func(c net.Conn) { fmt.Fprintf(c, "%d", c.LocalAddr().(*net.TCPAddr).Port) })
	}
	lbase := testpeer.FreePorts(t, n)
	s := startServerConfig(t, "127.0.0.1:0", &MemState{}, Config{Services: []Service{
		{Name: "h245-in", Proto: "tcp", Target: fmt.Sprintf("127.0.0.1:%d-%d", tbase, tbase+n-1)},
	}})
	runEnrolled(t, s, Config{Services: []Service{
		{Name: "h245-in", Proto: "tcp", Listen: fmt.Sprintf("127.0.0.1:%d-%d", lbase, lbase+n-1)},
	}})
	for _, i := range []int{2, 0, 1} {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(lbase+i))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != strconv.Itoa(tbase+i) {
			t.Fatalf("port %d reached %q (%v), want the target port %d", lbase+i, b, err, tbase+i)
		}
	}
}

func FuzzParseDialTarget(f *testing.F) {
	f.Add(AppendDialTarget(nil, netip.MustParseAddrPort("10.1.2.3:1720")))
	f.Add(AppendDialTarget(nil, netip.MustParseAddrPort("[2001:db8::1]:5000")))
	f.Add(make([]byte, 18))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		to, err := ParseDialTarget(b)
		if err != nil {
			return
		}
		again, err := ParseDialTarget(AppendDialTarget(nil, to))
		if err != nil || again != to {
			t.Fatalf("%s does not round trip: %s %v", to, again, err)
		}
	})
}

func TestDialServiceConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		svc  Service
		want string
	}{
		{"udp", Service{Name: "d", Proto: "udp", Networks: []string{"10.0.0.0/8"}}, "tunnel.services[0].networks: a dial service is tcp"},
		{"with target", Service{Name: "d", Proto: "tcp", Target: "10.0.0.1:5", Networks: []string{"10.0.0.0/8"}}, "tunnel.services[0].networks: a dial service has neither listen nor target"},
		{"bad prefix", Service{Name: "d", Proto: "tcp", Networks: []string{"10.0.0.1"}}, `tunnel.services[0].networks[0]: "10.0.0.1" is not an address prefix (10.0.0.0/8)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Config{Role: RoleClient, Server: "127.0.0.1:1", Services: []Service{tc.svc}}.Validate("tunnel")
			if err == nil || err.Error() != tc.want {
				t.Fatalf("%v, want %s", err, tc.want)
			}
		})
	}
	ok := Config{Role: RoleClient, Server: "127.0.0.1:1", Services: []Service{{Name: "d", Proto: "tcp", Networks: []string{"10.0.0.0/8"}, Source: "10.0.0.2"}}}
	if err := ok.Validate("tunnel"); err != nil {
		t.Fatal(err)
	}
}

// TestServiceIdleTimeout: a TCP connection to an offered service is closed
// after flow_idle of silence, unless the service's idle timeout is
// negative (never), as for H.323 signalling and H.245 that stay silent
// for a whole call.
func TestServiceIdleTimeout(t *testing.T) {
	s := startServerConfig(t, "127.0.0.1:0", &MemState{}, Config{FlowIdle: 200 * time.Millisecond, Services: []Service{
		{Name: "quiet", Proto: "tcp", Listen: "127.0.0.1:0", IdleTimeout: 200 * time.Millisecond},
		{Name: "calls", Proto: "tcp", Listen: "127.0.0.1:0", IdleTimeout: -1},
		{Name: "default", Proto: "tcp", Listen: "127.0.0.1:0"},
	}})
	runEnrolled(t, s, Config{Services: []Service{
		{Name: "quiet", Proto: "tcp", Target: tcpEcho(t)},
		{Name: "calls", Proto: "tcp", Target: tcpEcho(t)},
		{Name: "default", Proto: "tcp", Target: tcpEcho(t)},
	}})
	open := func(name string) net.Conn {
		c, err := net.Dial("tcp", s.ServiceAddr(name).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	echo := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	quiet, calls, dflt := open("quiet"), open("calls"), open("default")
	for _, c := range []net.Conn{quiet, calls, dflt} {
		if err := echo(c); err != nil {
			t.Fatal(err)
		}
	}
	// A service's idle timeout closes its silent connection...
	quiet.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := quiet.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Fatalf("the silent connection was not closed after its idle timeout: %v", err)
	}
	// ... which the other services' silent connections outlive, also by
	// default (flow_idle, 200 ms here, is for UDP flows).
	if err := echo(calls); err != nil {
		t.Fatalf("a connection of a service that never idles out: %v", err)
	}
	if err := echo(dflt); err != nil {
		t.Fatalf("a connection of a service without idle timeout: %v", err)
	}
	if err := (Config{Role: RoleServer, Services: []Service{{Name: "u", Proto: "udp", Listen: "127.0.0.1:0", IdleTimeout: time.Second}}}).Validate("tunnel"); err == nil {
		t.Fatal("an idle timeout on a udp service was accepted")
	}
}

// TestTCPPortRangeMaxFlows: max_flows bounds the connections of a TCP
// service offered on a range of ports together, not port by port, and so
// does the cap per source address; a refused connection is counted.
func TestTCPPortRangeMaxFlows(t *testing.T) {
	const n = 3
	tbase := testpeer.FreePorts(t, n)
	for i := 0; i < n; i++ {
		tcpServer(t, "127.0.0.1:"+strconv.Itoa(tbase+i), func(c net.Conn) { _, _ = io.Copy(c, c) })
	}
	// rangePair offers the range on the server with maxFlows, delivered to
	// the echo servers by a client; it returns the first port offered.
	rangePair := func(t *testing.T, maxFlows int) (*runningServer, int) {
		lbase := testpeer.FreePorts(t, n)
		s := startServerConfig(t, "127.0.0.1:0", &MemState{}, Config{MaxFlows: maxFlows, Services: []Service{
			{Name: "h245-out", Proto: "tcp", Listen: fmt.Sprintf("127.0.0.1:%d-%d", lbase, lbase+n-1)},
		}})
		runEnrolled(t, s, Config{Services: []Service{
			{Name: "h245-out", Proto: "tcp", Target: fmt.Sprintf("127.0.0.1:%d-%d", tbase, tbase+n-1)},
		}})
		return s, lbase
	}
	stats := func(s *runningServer) ServiceStats {
		for _, x := range s.Stats().Services {
			if x.Name == "h245-out" {
				return x
			}
		}
		return ServiceStats{}
	}
	// open connects from the loopback address src to port and sees its
	// echo; it returns nil when the connection was refused.
	open := func(t *testing.T, src string, port int) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return nil // reset before the dial returned
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x")); err == nil {
			if _, err = io.ReadFull(c, make([]byte, 1)); err == nil {
				c.SetDeadline(time.Time{})
				t.Cleanup(func() { c.Close() })
				return c
			}
		}
		c.Close()
		return nil
	}

	t.Run("max_flows", func(t *testing.T) {
		s, lbase := rangePair(t, 2)
		first := open(t, "127.0.0.1", lbase)
		if first == nil || open(t, "127.0.0.1", lbase+1) == nil {
			t.Fatal("a connection within max_flows 2 was not carried")
		}
		if open(t, "127.0.0.1", lbase+2) != nil {
			t.Fatal("a third connection, on the range's third port, was carried beyond max_flows 2")
		}
		if st := stats(s); st.FlowsRefused != 1 || st.Flows != 2 {
			t.Fatalf("accounting %+v, want 2 flows and 1 refusal", st)
		}
		// Closing one frees its place for the whole range.
		first.Close()
		eventually(t, "a connection in the place of the closed one", func() bool {
			return open(t, "127.0.0.1", lbase+2) != nil
		})
	})

	t.Run("per source", func(t *testing.T) {
		s, lbase := rangePair(t, 0)
		for i := range maxFlowsPerSource {
			if open(t, "127.0.0.1", lbase+i%n) == nil {
				t.Fatalf("connection %d from one address was not carried", i)
			}
		}
		if open(t, "127.0.0.1", lbase+maxFlowsPerSource%n) != nil {
			t.Fatalf("connection %d from one address was carried beyond %d across the range", maxFlowsPerSource+1, maxFlowsPerSource)
		}
		if open(t, "127.0.0.2", lbase+maxFlowsPerSource%n) == nil {
			t.Fatal("a connection from another address was refused")
		}
		if st := stats(s); st.FlowsRefused != 1 {
			t.Fatalf("accounting %+v, want 1 refusal", st)
		}
	})
}
