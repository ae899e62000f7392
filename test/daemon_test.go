package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// portico builds the binary once per test run.
func portico(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portico-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "portico")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, "github.com/portico-edge/portico/cmd/portico").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// daemon is a running `portico serve`.
type daemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	cfgPath string
	url     string
	out     *syncBuffer
	done    chan error
}

// syncBuffer collects the daemon's output.
type syncBuffer = testpeer.Buffer

// run runs a portico subcommand to completion and returns its combined output.
func run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, portico(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startDaemon writes cfg to a temp dir and serves it; the management listener
// must be at mgmtAddr. It waits until /healthz answers.
func startDaemon(t *testing.T, dir, cfg, mgmtAddr string, env ...string) *daemon {
	t.Helper()
	return startDaemonVia(t, nil, dir, cfg, mgmtAddr, env...)
}

// startDaemonVia is startDaemon with portico run by the command via (for
// instance a shell that lowers a resource limit first and execs "$@").
func startDaemonVia(t *testing.T, via []string, dir, cfg, mgmtAddr string, env ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: dir, cfgPath: filepath.Join(dir, "portico.yaml"), url: "https://" + mgmtAddr, out: &syncBuffer{}, done: make(chan error, 1)}
	if err := os.WriteFile(d.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(via[:len(via):len(via)], portico(t), "serve", "--config", d.cfgPath, "--data", filepath.Join(dir, "data"))
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := insecureClient(nil).Get(d.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("portico exited early: %v\n%s", err, d.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("portico did not answer /healthz within 60s\n%s", d.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits; it returns the exit error.
func (d *daemon) stop() error {
	if d.cmd.ProcessState != nil {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		d.t.Errorf("portico did not stop within 30s of SIGTERM\n%s", d.out.String())
		return <-d.done
	}
}

func (d *daemon) signal(s os.Signal) { d.cmd.Process.Signal(s) }

func insecureClient(jar http.CookieJar) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Jar:     jar,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
}

// apiClient speaks to the daemon as one user.
type apiClient struct {
	t      testing.TB
	base   string
	token  string
	c      *http.Client
	csrf   bool
	record func(method, path string, code int, body []byte)
}

func newClient(t *testing.T, base string) *apiClient {
	jar, _ := cookiejar.New(nil)
	return &apiClient{t: t, base: base, c: insecureClient(jar)}
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("bad JSON %q: %v", r.body, err)
	}
}

func (a *apiClient) do(method, path string, body any, hdr ...string) response {
	a.t.Helper()
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/yaml"
	case string:
		rd, ctype = strings.NewReader(b), "application/yaml"
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if a.csrf {
		req.Header.Set("X-Requested-With", "portico-test")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if a.record != nil {
		a.record(method, path, resp.StatusCode, b)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

func (a *apiClient) must(code int, method, path string, body any, hdr ...string) response {
	a.t.Helper()
	r := a.do(method, path, body, hdr...)
	if r.code != code {
		a.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.code, code, r.body)
	}
	return r
}

// peerCert is the leaf certificate addr presents for SNI name (none if "").
func peerCert(t *testing.T, addr, name string) *x509.Certificate {
	t.Helper()
	d := tls.Dialer{Config: &tls.Config{ServerName: name, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS to %s (SNI %q): %v", addr, name, err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0]
}
