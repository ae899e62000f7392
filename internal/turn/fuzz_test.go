package turn

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// fuzzConn is a PacketConn whose datagrams come from the fuzzer. in is
// unbuffered and the engine reads one datagram at a time, so handing over
// datagram N+1 means datagram N has been handled.
type fuzzConn struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	local  net.Addr
	from   net.Addr
	mu     sync.Mutex
	sent   int
}

func newFuzzConn() *fuzzConn {
	return &fuzzConn{
		in:     make(chan []byte),
		closed: make(chan struct{}),
		local:  &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3478},
		from:   &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000},
	}
}

func (c *fuzzConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case b := <-c.in:
		return copy(p, b), c.from, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *fuzzConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.sent++
	c.mu.Unlock()
	return len(p), nil
}

func (c *fuzzConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
func (c *fuzzConn) LocalAddr() net.Addr              { return c.local }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

func stunSeeds(t testing.TB) [][]byte {
	build := func(setters ...stun.Setter) []byte {
		m, err := stun.Build(setters...)
		if err != nil {
			t.Fatal(err)
		}
		return m.Raw
	}
	allocate := stun.NewType(stun.MethodAllocate, stun.ClassRequest)
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	key := LongTermKey(testUser, testRealm, testPass)
	return [][]byte{
		build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint),
		build(stun.TransactionID, allocate, transport),
		build(stun.TransactionID, allocate, transport, stun.NewUsername(testUser), stun.NewRealm(testRealm),
			stun.NewNonce("obviously-stale"), stun.NewLongTermIntegrity(testUser, testRealm, testPass), stun.Fingerprint),
		build(stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest), stun.NewUsername("1700000000:bob"),
			stun.NewRealm(testRealm), stun.NewNonce("n"), stun.MessageIntegrity(key)),
		build(stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest),
			&stun.XORMappedAddress{IP: net.IPv4(10, 0, 0, 1), Port: 9}),
		build(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
			stun.RawAttribute{Type: stun.AttrData, Value: []byte("payload")}),
		build(stun.TransactionID, stun.NewType(stun.MethodConnectionBind, stun.ClassRequest),
			stun.RawAttribute{Type: 0x002A, Value: []byte{0, 0, 0, 1}}),
		{0x40, 0x00, 0x00, 0x04, 'd', 'a', 't', 'a'}, // ChannelData
		{0x00, 0x01, 0xff, 0xff, 0x21, 0x12, 0xa4, 0x42},
		{},
	}
}

// FuzzServerUDP feeds arbitrary datagrams to the running engine, as anyone
// on the Internet can.
func FuzzServerUDP(f *testing.F) {
	for _, s := range stunSeeds(f) {
		f.Add(s)
	}
	srv, err := New(testConfig(), Deps{Logger: testLogger(f), Users: NewMemoryUsers()})
	if err != nil {
		f.Fatal(err)
	}
	conn := newFuzzConn()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), conn) }()
	defer func() {
		srv.Close()
		<-done
	}()
	f.Fuzz(func(t *testing.T, b []byte) {
		select {
		case conn.in <- b:
		case <-time.After(10 * time.Second):
			t.Fatal("engine stopped reading")
		}
	})
}

// FuzzServerStream feeds an arbitrary byte stream to a TCP-like
// connection handed over with HandleConn (STUN framing, RFC 8489 §6.2.2).
func FuzzServerStream(f *testing.F) {
	for _, s := range stunSeeds(f) {
		f.Add(s)
	}
	srv, err := New(testConfig(), Deps{Logger: testLogger(f), Users: NewMemoryUsers()})
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), newFuzzConn()) }()
	defer func() {
		srv.Close()
		<-done
	}()
	waitServing(f, srv)
	f.Fuzz(func(t *testing.T, b []byte) {
		client, server := net.Pipe()
		handled := make(chan error, 1)
		go func() { handled <- srv.HandleConn(context.Background(), server) }()
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, err := client.Read(buf); err != nil {
					return
				}
			}
		}()
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = client.Write(b)
		client.Close()
		if err := <-handled; err != nil {
			t.Fatalf("HandleConn: %v", err)
		}
	})
}

// FuzzResponseLifetime checks that reading LIFETIME never panics and only
// succeeds on Allocate/Refresh success responses.
func FuzzResponseLifetime(f *testing.F) {
	for _, s := range stunSeeds(f) {
		f.Add(s)
	}
	ok, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassSuccessResponse),
		stun.RawAttribute{Type: attrLifetime, Value: []byte{0, 0, 2, 88}})
	f.Add(ok.Raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		lt, ok := responseLifetime(b)
		if ok && (len(b) < stunHeaderLen || b[0] != 0x01 || lt < 0) {
			t.Fatalf("lifetime %v from %x", lt, b)
		}
	})
}

// FuzzParseRESTUsername checks the REST username split against its
// definition.
func FuzzParseRESTUsername(f *testing.F) {
	for _, s := range []string{"1700000000:bob", "1:", ":bob", "abc:def", "99999999999999999999:x", "1700000000:a:b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exp, user, ok := parseRESTUsername(s)
		if !ok {
			return
		}
		if got, _ := RESTCredentials("k", user, exp); got != s && "0"+got != s && !leadingZeros(s, got) {
			t.Fatalf("%q parsed as (%v, %q) which formats as %q", s, exp.Unix(), user, got)
		}
	})
}

func leadingZeros(s, canonical string) bool {
	for len(s) > len(canonical) && s[0] == '0' {
		s = s[1:]
	}
	return s == canonical
}
