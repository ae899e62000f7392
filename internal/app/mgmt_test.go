package app

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func tcpAddr(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestMgmtACL(t *testing.T) {
	acl := newMgmtACL()
	if !acl.allows(tcpAddr("203.0.113.7:4000")) {
		t.Fatal("no list must allow any client")
	}
	acl.set([]string{"10.1.0.0/16", "2001:db8::/32"})
	for addr, want := range map[string]bool{
		"10.1.2.3:1":          true,
		"10.2.0.1:1":          false,
		"203.0.113.7:4000":    false,
		"[2001:db8::5]:443":   true,
		"[2001:db9::5]:443":   false,
		"127.0.0.1:5000":      true, // the node's own CLI
		"[::1]:5000":          true,
		"[::ffff:10.1.0.9]:1": true, // v4-mapped from a dual-stack socket
	} {
		if got := acl.allows(tcpAddr(addr)); got != want {
			t.Errorf("allows(%s) = %v, want %v", addr, got, want)
		}
	}
	acl.set(nil)
	if !acl.allows(tcpAddr("10.2.0.1:1")) {
		t.Error("clearing the list must allow any client again")
	}
}

// fakeListener yields conns with chosen remote addresses.
type fakeListener struct{ conns []net.Conn }

func (f *fakeListener) Accept() (net.Conn, error) {
	if len(f.conns) == 0 {
		return nil, errors.New("closed")
	}
	c := f.conns[0]
	f.conns = f.conns[1:]
	return c, nil
}
func (f *fakeListener) Close() error   { return nil }
func (f *fakeListener) Addr() net.Addr { return tcpAddr("127.0.0.1:9443") }

type remoteConn struct {
	net.Conn
	remote net.Addr
	closed bool
}

func (c *remoteConn) RemoteAddr() net.Addr { return c.remote }
func (c *remoteConn) Close() error         { c.closed = true; return nil }

func TestACLListenerClosesRefused(t *testing.T) {
	acl := newMgmtACL()
	acl.set([]string{"192.0.2.0/24"})
	bad := &remoteConn{remote: tcpAddr("198.51.100.1:1")}
	good := &remoteConn{remote: tcpAddr("192.0.2.9:1")}
	l := aclListener{&fakeListener{conns: []net.Conn{bad, good}}, acl, slog.New(slog.NewTextHandler(io.Discard, nil))}
	c, err := l.Accept()
	if err != nil || c != good {
		t.Fatalf("Accept = %v, %v; want the allowed conn", c, err)
	}
	if !bad.closed || good.closed {
		t.Errorf("refused conn closed %v, allowed conn closed %v", bad.closed, good.closed)
	}
	if n := testutil.ToFloat64(acl.denied); n != 1 {
		t.Errorf("denied counter %v, want 1", n)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("listener error not passed through")
	}
}
