package accessproxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// connLimitProxy serves plain HTTP to an inside echo server.
func connLimitProxy(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	up := httptest.NewServer(echoHeaders())
	t.Cleanup(up.Close)
	cfg.Routes = []Route{{Name: "plain", Match: Match{Plaintext: true}, Action: ActionHTTP, Upstream: up.URL}}
	return startProxy(t, cfg, Deps{Certs: newPKI(t).store, Registerer: prometheus.NewRegistry()})
}

// dialFrom connects to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(from), 0))}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitValue waits until get returns want.
func waitValue(t *testing.T, what string, get func() float64, want float64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); get() != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", what, get(), want)
		}
	}
}

// works reports whether a request on c is answered.
func works(c net.Conn) bool {
	resp, _, err := doRequest(c, "portal.example.test", "/")
	return err == nil && resp.StatusCode == http.StatusOK
}

// TestMaxConnsReloadsLive fills access_proxy.max_conns with idle
// connections, raises it by Reload and connects again: the new limit
// holds at once, without a restart.
func TestMaxConnsReloadsLive(t *testing.T) {
	cfg := Config{MaxConns: 1, MaxConnsPerClient: -1}
	s, addr := connLimitProxy(t, cfg)
	active := func() float64 { return testutil.ToFloat64(s.m.active) }
	limited := func() float64 { return testutil.ToFloat64(s.m.rejected.WithLabelValues("conn_limit")) }

	dialFrom(t, "127.0.0.1", addr) // holds the only slot, sending nothing
	waitValue(t, "open connections", active, 1)
	dialFrom(t, "127.0.0.1", addr)
	waitValue(t, "refused over max_conns", limited, 1)

	cfg = s.Config()
	cfg.MaxConns = 3
	if _, err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if c := dialFrom(t, "127.0.0.1", addr); !works(c) {
		t.Fatalf("connection under the reloaded max_conns refused (refused so far: %v)", limited())
	}

	cfg.MaxConns = 1
	if _, err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	dialFrom(t, "127.0.0.1", addr)
	waitValue(t, "refused over the lowered max_conns", limited, 2)
}

// TestMaxConnsPerClient holds max_conns_per_client connections from one
// address: one more from it is refused, another address is served, and a
// closed connection frees its slot.
func TestMaxConnsPerClient(t *testing.T) {
	s, addr := connLimitProxy(t, Config{MaxConnsPerClient: 2})
	active := func() float64 { return testutil.ToFloat64(s.m.active) }
	limited := func() float64 { return testutil.ToFloat64(s.m.rejected.WithLabelValues("client_conn_limit")) }

	a := dialFrom(t, "127.0.0.1", addr)
	dialFrom(t, "127.0.0.1", addr)
	waitValue(t, "open connections", active, 2)
	if c := dialFrom(t, "127.0.0.1", addr); works(c) {
		t.Fatal("third connection from one client served")
	}
	if limited() != 1 {
		t.Errorf("client_conn_limit refusals = %v, want 1", limited())
	}
	d := dialFrom(t, "127.0.0.2", addr)
	if !works(d) {
		t.Fatal("another client refused")
	}
	d.Close()
	a.Close()
	waitValue(t, "open connections after a close", active, 1)
	if c := dialFrom(t, "127.0.0.1", addr); !works(c) {
		t.Fatal("client refused after one of its connections closed")
	}
}
