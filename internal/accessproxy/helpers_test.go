package accessproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/certs"
	"github.com/portico-edge/portico/internal/certs/certtest"
)

// pki is the outside-facing CA and Portico's certificate store for a test.
type pki struct {
	ca    *certtest.CA
	store *certs.Store
}

func newPKI(t testing.TB, names ...string) *pki {
	t.Helper()
	p := &pki{ca: certtest.NewCA(t, "Portico Test Outside CA"), store: certs.NewStore(certs.Options{})}
	for _, n := range names {
		p.add(t, n, []string{n})
	}
	return p
}

func (p *pki) add(t testing.TB, name string, dns []string) *certtest.Leaf {
	t.Helper()
	l := p.ca.Issue(t, dns, certtest.Options{})
	if _, err := p.store.Import(context.Background(), name, l.CertPEM, l.KeyPEM, ""); err != nil {
		t.Fatal(err)
	}
	return l
}

func (p *pki) clientTLS(sni string, alpn ...string) *tls.Config {
	return &tls.Config{RootCAs: p.ca.Pool(), ServerName: sni, NextProtos: alpn}
}

// startProxy runs a Server on a loopback port and returns its address.
func startProxy(t testing.TB, cfg Config, deps Deps) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen == "" {
		cfg.Listen = l.Addr().String()
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListen(ctx, l, cfg.Listen) }()
	t.Cleanup(func() {
		cancel()
		s.Close()
		if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return s, l.Addr().String()
}

// httpsGet does one HTTP/1.1 request over a fresh TLS connection.
func httpsGet(t *testing.T, addr string, cfg *tls.Config, host, path string) (*http.Response, string, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	return doRequest(c, host, path)
}

func doRequest(c net.Conn, host, path string) (*http.Response, string, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest("GET", "http://"+host+path, nil)
	if err := req.Write(c); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return nil, "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), nil
}

// echoHeaders is an inside HTTP server that reports what it received.
func echoHeaders() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "Apache/2.4.1 (Unix)")
		w.Header().Set("X-Powered-By", "PHP/5.6")
		w.Header().Set("X-Inside", "yes")
		var sb strings.Builder
		sb.WriteString("path=" + r.URL.Path + "\n")
		sb.WriteString("xff=" + r.Header.Get("X-Forwarded-For") + "\n")
		sb.WriteString("proto=" + r.Header.Get("X-Forwarded-Proto") + "\n")
		sb.WriteString("host=" + r.Host + "\n")
		if r.Method == http.MethodPost {
			n, err := io.Copy(io.Discard, r.Body)
			sb.WriteString("body=" + itoa(n) + " err=" + errString(err) + "\n")
		}
		io.WriteString(w, sb.String())
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// servedLeaf returns the certificate a TLS server presents for sni.
func servedLeaf(t *testing.T, addr string, cfg *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}
