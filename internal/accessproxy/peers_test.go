package accessproxy

// Tests against real third-party peers: nginx (inside web server and TLS
// passthrough target), curl (HTTP/1.1 and HTTP/2 clients), openssl s_client
// (SNI routing, TLS policy), slapd with ldap-utils (LDAP StartTLS and LDAPS
// on both legs, read-only policy) and haproxy (PROXY protocol v2 balancer).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/certs/certtest"
	"github.com/portico-edge/portico/internal/testpeer"
)

// startProc runs a peer in the foreground and stops it (by its own PID) at cleanup.
func startProc(t *testing.T, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	log, _ := os.Create(filepath.Join(dir, filepath.Base(name)+".out"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		// SIGTERM first: nginx's master stops its workers only on a signal
		// it can catch (SIGKILL would orphan them).
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("%s output:\n%s", name, b)
		}
	})
	return cmd
}

// waitPort waits until addr accepts TCP connections.
func waitPort(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never accepted connections", addr)
}

func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// nginxPeer is an inside web server: plain HTTP on port, TLS on tlsPort
// with a certificate from insideCA, and /ws proxied to a Go WebSocket echo.
type nginxPeer struct {
	addr, tlsAddr string
	insideCA      *certtest.CA
}

func startNginx(t *testing.T, wsAddr string) *nginxPeer {
	t.Helper()
	testpeer.Require(t, "nginx")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	port, tlsPort := testpeer.FreePort(t), testpeer.FreePort(t)
	ca := certtest.NewCA(t, "Inside CA")
	leaf := ca.Issue(t, []string{"inside.example.test", "127.0.0.1"}, certtest.Options{})
	crt, key := leaf.WriteFiles(t, dir, "inside")
	os.MkdirAll(filepath.Join(dir, "www"), 0o755)
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
	writeFile(t, filepath.Join(dir, "www", "index.html"), []byte("hello from nginx\n"))
	writeFile(t, filepath.Join(dir, "www", "big.bin"), bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16))
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must read the 0700 test directory
	}
	conf := user + fmt.Sprintf(`
worker_processes 1;
error_log %[1]s/error.log;
pid %[1]s/nginx.pid;
events { worker_connections 512; }
http {
  access_log off;
  server_tokens on;
  client_body_temp_path %[1]s/tmp; proxy_temp_path %[1]s/tmp; fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp; scgi_temp_path %[1]s/tmp;
  server {
    listen 127.0.0.1:%[2]d;
    root %[1]s/www;
    add_header X-Powered-By "PHP/5.6.40";
    location /xff { default_type text/plain; return 200 "xff=$http_x_forwarded_for proto=$http_x_forwarded_proto\n"; }
    location /ws { proxy_pass http://%[5]s; proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; }
  }
  server {
    listen 127.0.0.1:%[6]d ssl;
    ssl_certificate %[3]s; ssl_certificate_key %[4]s;
    location / { default_type text/plain; return 200 "inside-tls\n"; }
  }
}
`, dir, port, crt, key, wsAddr, tlsPort)
	writeFile(t, filepath.Join(dir, "nginx.conf"), []byte(conf))
	startProc(t, dir, "nginx", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	n := &nginxPeer{addr: fmt.Sprintf("127.0.0.1:%d", port), tlsAddr: fmt.Sprintf("127.0.0.1:%d", tlsPort), insideCA: ca}
	waitPort(t, n.addr)
	waitPort(t, n.tlsAddr)
	return n
}

// wsEcho is a minimal RFC 6455 echo server (text frames, payload < 126 bytes).
func wsEcho(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "not a websocket", 400)
			return
		}
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]))
		rw.Flush()
		for {
			var h [2]byte
			if _, err := io.ReadFull(rw, h[:]); err != nil {
				return
			}
			n := int(h[1] & 0x7f)
			var mask [4]byte
			io.ReadFull(rw, mask[:])
			p := make([]byte, n)
			if _, err := io.ReadFull(rw, p); err != nil {
				return
			}
			for i := range p {
				p[i] ^= mask[i%4]
			}
			rw.Write(append([]byte{0x81, byte(n)}, p...))
			rw.Flush()
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// wsRoundTrip upgrades over c and echoes msg.
func wsRoundTrip(c net.Conn, host, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		return "", fmt.Errorf("upgrade: %s %v", resp.Status, resp.Header)
	}
	mask := []byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(msg))}
	frame = append(frame, mask...)
	for i := 0; i < len(msg); i++ {
		frame = append(frame, msg[i]^mask[i%4])
	}
	c.Write(frame)
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return "", err
	}
	p := make([]byte, h[1]&0x7f)
	_, err = io.ReadFull(br, p)
	return string(p), err
}

func TestNginxCurlOpenSSL(t *testing.T) {
	testpeer.Require(t, "nginx", "curl", "openssl")
	ws := wsEcho(t)
	ng := startNginx(t, ws)
	p := newPKI(t, "portal.example.test")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "outside-ca.pem")
	writeFile(t, caFile, p.ca.PEM())
	cfg := Config{Routes: []Route{
		{Name: "portal", Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: "http://" + ng.addr},
		{Name: "inside-https", Match: Match{SNI: []string{"secure.example.test"}}, Action: ActionHTTP, Upstream: "https://" + ng.tlsAddr,
			UpstreamTLS: UpstreamTLS{CA: string(ng.insideCA.PEM()), ServerName: "inside.example.test"}},
		{Name: "inside-pass", Match: Match{SNI: []string{"inside.example.test"}}, Action: ActionPassthrough, Upstream: ng.tlsAddr},
	}}
	p.add(t, "secure", []string{"secure.example.test"})
	_, addr := startProxy(t, cfg, Deps{Certs: p.store})
	_, port, _ := net.SplitHostPort(addr)
	resolve := func(name string) string { return name + ":" + port + ":127.0.0.1" }
	url := func(name, path string) string { return "https://" + name + ":" + port + path }

	for _, proto := range []struct{ flag, want string }{{"--http1.1", "1.1"}, {"--http2", "2"}} {
		t.Run("curl "+proto.flag, func(t *testing.T) {
			out, err := run(t, nil, "curl", "-sS", proto.flag, "--cacert", caFile, "--resolve", resolve("portal.example.test"),
				"-D", "-", "-w", "\nversion=%{http_version}\n", url("portal.example.test", "/index.html"))
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if !strings.Contains(out, "hello from nginx") || !strings.Contains(out, "version="+proto.want+"\n") {
				t.Fatalf("curl output:\n%s", out)
			}
			low := strings.ToLower(out)
			if strings.Contains(low, "server:") || strings.Contains(low, "nginx/") || strings.Contains(low, "x-powered-by") {
				t.Fatalf("inside server identity leaked:\n%s", out)
			}
		})
	}
	t.Run("nginx sees x-forwarded-for", func(t *testing.T) {
		out, err := run(t, nil, "curl", "-sS", "--cacert", caFile, "--resolve", resolve("portal.example.test"), url("portal.example.test", "/xff"))
		if err != nil || !strings.Contains(out, "xff=127.0.0.1 proto=https") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("https upstream verified against inside CA", func(t *testing.T) {
		out, err := run(t, nil, "curl", "-sS", "--cacert", caFile, "--resolve", resolve("secure.example.test"), url("secure.example.test", "/"))
		if err != nil || out != "inside-tls\n" {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("websocket through portico and nginx", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, p.clientTLS("portal.example.test", "http/1.1"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got, err := wsRoundTrip(c, "portal.example.test", "hello websocket")
		if err != nil || got != "hello websocket" {
			t.Fatalf("echo %q %v", got, err)
		}
	})
	t.Run("openssl s_client sni routing", func(t *testing.T) {
		insideCAFile := filepath.Join(dir, "inside-ca.pem")
		writeFile(t, insideCAFile, ng.insideCA.PEM())
		for _, tc := range []struct{ sni, ca, wantSubject, wantIssuer string }{
			{"portal.example.test", caFile, "CN = portal.example.test", "Portico Test Outside CA"},
			{"inside.example.test", insideCAFile, "CN = inside.example.test", "Inside CA"},
		} {
			out, err := run(t, nil, "openssl", "s_client", "-connect", addr, "-servername", tc.sni, "-CAfile", tc.ca, "-verify_return_error")
			if err != nil || !strings.Contains(out, "subject="+tc.wantSubject) || !strings.Contains(out, tc.wantIssuer) || !strings.Contains(out, "Verify return code: 0 (ok)") {
				t.Fatalf("s_client -servername %s: %v\n%s", tc.sni, err, out)
			}
		}
		out, err := run(t, nil, "openssl", "s_client", "-connect", addr, "-servername", "unknown.example.test")
		if err == nil || !strings.Contains(out, "unrecognized name") {
			t.Fatalf("unknown SNI: %v\n%s", err, out)
		}
	})
	t.Run("openssl legacy versions and ciphers refused", func(t *testing.T) {
		for _, args := range [][]string{
			{"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"},
			{"-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"},
			{"-tls1_2", "-cipher", "DES-CBC3-SHA:ECDHE-ECDSA-DES-CBC3-SHA:ECDHE-RSA-DES-CBC3-SHA:@SECLEVEL=0"},
		} {
			a := append([]string{"s_client", "-connect", addr, "-servername", "portal.example.test"}, args...)
			out, err := run(t, nil, "openssl", a...)
			if err == nil || strings.Contains(out, "Cipher is ") && !strings.Contains(out, "Cipher is (NONE)") {
				t.Fatalf("openssl %v negotiated:\n%s", args, out)
			}
			if strings.Contains(out, "no ciphers available") || strings.Contains(out, "no protocols available") {
				t.Fatalf("openssl %v could not even offer it (test would prove nothing):\n%s", args, out)
			}
		}
	})
}

// TestHAProxySendProxyV2: haproxy in front of Portico sends PROXY v2; the
// route's ACL sees curl's own source address, not haproxy's.
func TestHAProxySendProxyV2(t *testing.T) {
	testpeer.Require(t, "nginx", "curl", "haproxy")
	ng := startNginx(t, "127.0.0.1:9")
	p := newPKI(t, "portal.example.test")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, p.ca.PEM())
	cfg := Config{
		ProxyProtocol: ProxyProtocol{Trusted: []string{"127.0.0.1/32"}},
		Routes: []Route{{Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: "http://" + ng.addr,
			Allow: []string{"127.0.0.5/32"}}},
	}
	_, addr := startProxy(t, cfg, Deps{Certs: p.store})
	hp := testpeer.FreePort(t)
	conf := fmt.Sprintf(`global
  pidfile %s/haproxy.pid
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:%d
  default_backend be
backend be
  server portico %s send-proxy-v2
`, dir, hp, addr)
	writeFile(t, filepath.Join(dir, "haproxy.cfg"), []byte(conf))
	startProc(t, dir, "haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
	waitPort(t, fmt.Sprintf("127.0.0.1:%d", hp))
	get := func(src string) (string, error) {
		return run(t, nil, "curl", "-sS", "--interface", src, "--cacert", caFile, "-w", "\ncode=%{http_code}",
			"--resolve", fmt.Sprintf("portal.example.test:%d:127.0.0.1", hp), fmt.Sprintf("https://portal.example.test:%d/xff", hp))
	}
	out, err := get("127.0.0.5")
	if err != nil || !strings.Contains(out, "xff=127.0.0.5 proto=https") || !strings.Contains(out, "code=200") {
		t.Fatalf("allowed client: %v\n%s", err, out)
	}
	out, err = get("127.0.0.6")
	if err != nil || !strings.Contains(out, "code=403") {
		t.Fatalf("denied client: %v\n%s", err, out)
	}
	// Straight to Portico from the trusted address without a header: refused.
	out, err = run(t, nil, "curl", "-sS", "--cacert", caFile, "--resolve", "portal.example.test:"+strings.Split(addr, ":")[1]+":127.0.0.1",
		"https://portal.example.test:"+strings.Split(addr, ":")[1]+"/xff")
	if err == nil {
		t.Fatalf("connection without PROXY header from the balancer served:\n%s", out)
	}
}
