package tunnel

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// upPair is an enrolled, running pair with the tunnel up and a UDP flow
// echoing through it.
func upPair(t *testing.T) (*runningServer, *Client, func() error) {
	t.Helper()
	s, c := enrolledPair(t)
	runClient(t, c)
	eventually(t, "tunnel up", func() bool { return c.Stats().State == "up" && s.Stats().State == "up" })
	uc, pkt := udpEchoes(t, s.ServiceAddr("rtp").String())
	return s, c, func() error { return udpRoundTrip(uc, pkt) }
}

// refused reports whether a tunnel connection attempt by c fails: in the
// handshake, or closed by the server right after it (TLS 1.3 checks the
// client's certificate after the client finished).
func refused(t *testing.T, c *Client) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, release, err := c.connect(ctx)
	if err != nil {
		return true
	}
	defer release()
	select {
	case <-conn.Context().Done():
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// afterRotation checks that the flow echo carries on after a rotation
// over the same connection (the server accepted conns so far), then that
// the client reconnects when the server closes it and the flow carries
// on.
func afterRotation(t *testing.T, s *runningServer, c *Client, conns uint64, echo func() error) {
	t.Helper()
	if err := echo(); err != nil {
		t.Fatalf("flow after the rotation: %v", err)
	}
	if st := s.Stats(); st.Connections != conns || st.State != "up" {
		t.Fatalf("the rotation reconnected: %+v", st)
	}
	s.conn.Load().CloseWithError(codeShutdown, "test")
	eventually(t, "reconnected", func() bool { return s.Stats().Connections == conns+1 && c.Stats().State == "up" })
	if err := echo(); err != nil {
		t.Fatalf("flow after reconnecting: %v", err)
	}
}

// clientFrom is a client that starts from a copy of st (an identity and
// pins kept from before a rotation).
func clientFrom(t *testing.T, s *runningServer, st State) *Client {
	t.Helper()
	ms := &MemState{}
	_ = ms.Save(st)
	return newTestClient(t, s.addr, ms)
}

// TestRotateClientCertificate: the client rolls to a new key pair while
// the tunnel carries a flow. The server pins the new certificate and
// retires the old one over the tunnel; the connection and the flow carry
// on without a reconnect; the next connection uses the new certificate,
// and the old one is refused.
func TestRotateClientCertificate(t *testing.T) {
	s, c, echo := upPair(t)
	before, _ := c.deps.State.Load()
	oldFP, conns := c.Fingerprint(), s.Stats().Connections

	fp, err := c.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fp == oldFP || c.Fingerprint() != fp {
		t.Fatalf("fingerprint %s after rotating from %s, Rotate said %s", c.Fingerprint(), oldFP, fp)
	}
	if p := s.Peers(); !slices.Equal(p, []string{fp}) {
		t.Fatalf("server pins %v, want only the new %s", p, fp)
	}
	if saved, _ := c.deps.State.Load(); Fingerprint(mustCert(t, saved)) != fp {
		t.Fatal("the new identity was not saved")
	}
	// The flow carries on without a reconnection; the next connection
	// presents the new certificate and is admitted.
	afterRotation(t, s, c, conns, echo)

	// The old certificate is stale now.
	rejected := s.Stats().Rejected
	if !refused(t, clientFrom(t, s, before)) {
		t.Fatal("a client with the retired certificate was admitted")
	}
	if got := s.Stats().Rejected; got != rejected+1 {
		t.Fatalf("rejected %d, want %d", got, rejected+1)
	}
}

// TestRotateServerCertificate: the server rolls to a new key pair; the
// connected client pins the new certificate and retires the old one over
// the tunnel, the flow carries on, the next connection meets the new
// certificate, and a client that still pins only the old one refuses the
// server.
func TestRotateServerCertificate(t *testing.T) {
	s, c, echo := upPair(t)
	before, _ := c.deps.State.Load()
	oldFP, conns := s.Fingerprint(), s.Stats().Connections

	fp, err := s.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fp == oldFP || s.Fingerprint() != fp {
		t.Fatalf("fingerprint %s after rotating from %s, Rotate said %s", s.Fingerprint(), oldFP, fp)
	}
	if st, _ := c.deps.State.Load(); !slices.Equal(st.Peers, []string{fp}) || len(st.Replaces) != 0 {
		t.Fatalf("client pins %v (replaces %v), want only the new %s", st.Peers, st.Replaces, fp)
	}
	afterRotation(t, s, c, conns, echo)
	// A token names the server's new certificate.
	tok, _, err := s.CreateToken()
	if err != nil || !strings.HasSuffix(tok, "."+fp) {
		t.Fatalf("token %q %v", tok, err)
	}

	// A client that trusts only the old server certificate refuses the
	// server in the handshake.
	stale := clientFrom(t, s, before)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := stale.connect(ctx); err == nil {
		t.Fatal("a client pinning the old server certificate connected")
	}
}

// TestRotateCutShort: a rotation that stops after the pin (the rotating end
// never sent its retire) still retires the old certificate once the new
// one first connects.
func TestRotateCutShort(t *testing.T) {
	s, c, _ := upPair(t)
	old := c.Fingerprint()
	var fresh State
	cert, fp, err := identity(&fresh)
	if err != nil {
		t.Fatal(err)
	}
	if err := control(context.Background(), c.conn.Load(), controlPin+" "+fp); err != nil {
		t.Fatal(err)
	}
	if p := s.Peers(); !slices.Contains(p, old) || !slices.Contains(p, fp) {
		t.Fatalf("server pins %v after the pin", p)
	}
	c.mu.Lock()
	c.cert, c.st.CertPEM, c.st.KeyPEM = cert, fresh.CertPEM, fresh.KeyPEM
	c.mu.Unlock()
	conns := s.Stats().Connections
	s.conn.Load().CloseWithError(codeShutdown, "test")
	eventually(t, "reconnected with the new certificate", func() bool { return s.Stats().Connections == conns+1 })
	eventually(t, "old certificate retired", func() bool { return slices.Equal(s.Peers(), []string{fp}) })
}

// TestControlRefused: a control request that is malformed, or that pins
// the connection's own certificate, is refused with a reason and changes
// nothing; rotating without a connection fails.
func TestControlRefused(t *testing.T) {
	s, c, _ := upPair(t)
	conn := c.conn.Load()
	for _, req := range []string{"hello", "pin 12", "retire now", controlPin + " " + c.Fingerprint(), strings.Repeat("x", 300)} {
		if err := control(context.Background(), conn, req); !errors.Is(err, ErrRotate) || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("%.20q: %v", req, err)
		}
	}
	if p := s.Peers(); !slices.Equal(p, []string{c.Fingerprint()}) {
		t.Fatalf("refused requests changed the pins: %v", p)
	}
	if conn.Context().Err() != nil {
		t.Fatal("a refused request ended the connection")
	}
	idle := newTestClient(t, s.addr, &MemState{})
	if _, err := idle.Rotate(context.Background()); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("Rotate without a connection: %v", err)
	}
}

func TestParseControl(t *testing.T) {
	fp := strings.Repeat("AB", 32)
	for _, tc := range []struct {
		name, line, verb, fp string
		ok                   bool
	}{
		{"pin", "pin " + fp, "pin", strings.ToLower(fp), true},
		{"retire", "retire", "retire", "", true},
		{"retire with argument", "retire " + fp, "", "", false},
		{"pin without fingerprint", "pin", "", "", false},
		{"short fingerprint", "pin abcd", "", "", false},
		{"not hex", "pin " + strings.Repeat("zz", 32), "", "", false},
		{"unknown", "drop " + fp, "", "", false},
		{"empty", "", "", "", false},
		{"too long", "pin " + strings.Repeat("a", 200), "", "", false},
		{"services", "services sip=200  web=5", "services", "sip=200 web=5", true},
		{"no services", "services", "services", "", true},
		{"service priority 0", "services sip=0", "", "", false},
		{"service twice", "services sip=1 sip=2", "", "", false},
		{"service name", "services SIP=1", "", "", false},
		{"service without priority", "services sip", "", "", false},
		{"services too long", "services " + strings.Repeat("a=1 ", 1100), "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verb, got, err := ParseControl(tc.line)
			if (err == nil) != tc.ok || verb != tc.verb || got != tc.fp {
				t.Fatalf("ParseControl(%q) = %q %q %v", tc.line, verb, got, err)
			}
			if err != nil && !errors.Is(err, ErrHeader) {
				t.Fatalf("error %v is not ErrHeader", err)
			}
		})
	}
}

func FuzzParseControl(f *testing.F) {
	f.Add("pin " + strings.Repeat("0f", 32))
	f.Add("retire")
	f.Add("pin zz")
	f.Add("priority 200")
	f.Add("services sip=200 web=1")
	f.Fuzz(func(t *testing.T, line string) {
		verb, fp, err := ParseControl(line)
		if err != nil {
			return
		}
		switch verb {
		case controlRetire:
			if fp != "" {
				t.Fatalf("retire with %q", fp)
			}
		case controlPin:
			if len(fp) != 64 || strings.ToLower(fp) != fp {
				t.Fatalf("pin of %q", fp)
			}
		case controlPriority:
			if !validPriority(fp) {
				t.Fatalf("priority %q", fp)
			}
		case controlServices:
			for _, f := range strings.Fields(fp) {
				name, n, _ := strings.Cut(f, "=")
				if validServiceName(name) != nil || !validPriority(n) {
					t.Fatalf("services entry %q", f)
				}
			}
		default:
			t.Fatalf("verb %q accepted", verb)
		}
	})
}

func mustCert(t *testing.T, st State) []byte {
	t.Helper()
	cert, _, err := identity(&st)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Certificate[0]
}
