package test

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

const adminPassword = "correct-horse-battery"

func baseConfig(mgmt string) string {
	return fmt.Sprintf(`version: 1
node:
  name: test-node
  drain_timeout: 5s
interfaces:
  external: {address: 127.0.0.1}
  internal: {address: 127.0.0.1, networks: [10.0.0.0/8]}
store:
  backend: sqlite
management:
  listen: %s
  max_login_failures: 3
  lockout: 1m
log:
  level: info
  file: log/portico.log
  max_size_mb: 1
  max_files: 2
`, mgmt)
}

func freeAddr(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
}

// TestFoundation walks the foundation's "done when": serve, health, TLS
// policy, login, tokens, roles, config replace with refusal and concurrency,
// live listener move, SIGHUP, metrics, OpenAPI conformance and SIGTERM.
func TestFoundation(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon test; skipped under -short")
	}
	dir := t.TempDir()
	mgmt := freeAddr(t)
	d := startDaemon(t, dir, baseConfig(mgmt), mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)

	raw, err := os.ReadFile("../internal/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	oc := newOpenAPIChecker(t, raw)
	rec := func(method, path string, code int, body []byte) { oc.check(t, method, path, code, body) }

	t.Run("tls policy", func(t *testing.T) {
		cert := peerCert(t, mgmt, "")
		if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
			t.Errorf("management certificate is %v signed with %v; want ECDSA with SHA-256", cert.PublicKeyAlgorithm, cert.SignatureAlgorithm)
		}
		if _, err := tls.Dial("tcp", mgmt, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}); err == nil {
			t.Error("a TLS 1.1 client was accepted")
		}
		weak := []uint16{tls.TLS_RSA_WITH_RC4_128_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA}
		if _, err := tls.Dial("tcp", mgmt, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: weak}); err == nil {
			t.Error("an RC4/3DES-only client was accepted")
		}
	})

	anon := newClient(t, d.url)
	anon.record = rec
	anon.must(200, "GET", "/healthz", nil)
	anon.must(200, "GET", "/readyz", nil)
	anon.must(401, "GET", "/api/v1/status", nil)
	anon.token = "pt_forgedforgedforgedforgedforgedforgedforged"
	anon.must(401, "GET", "/api/v1/status", nil)
	anon.token = ""

	admin := newClient(t, d.url)
	admin.record = rec
	admin.must(401, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": "wrong-password-1"})
	admin.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	admin.must(200, "GET", "/api/v1/me", nil)
	// A cookie-authenticated change without X-Requested-With is refused (CSRF guard).
	admin.must(403, "POST", "/api/v1/tokens", map[string]string{"name": "ci"})
	admin.csrf = true
	var tok struct{ Secret, ID string }
	admin.must(201, "POST", "/api/v1/tokens", map[string]string{"name": "ci"}).json(t, &tok)
	if !strings.HasPrefix(tok.Secret, "pt_") {
		t.Fatalf("token secret %q", tok.Secret)
	}
	script := newClient(t, d.url)
	script.record = rec
	script.token = tok.Secret
	var status map[string]any
	script.must(200, "GET", "/api/v1/status", nil).json(t, &status)
	if status["node"] != "test-node" || status["store"] != "sqlite" {
		t.Errorf("status = %v", status)
	}
	script.must(200, "GET", "/api/v1/tokens", nil)

	t.Run("portico status command", func(t *testing.T) {
		out, err := run(t, []string{"PORTICO_URL=" + d.url, "PORTICO_TOKEN=" + tok.Secret, "PORTICO_INSECURE=1"}, "status")
		if err != nil || !strings.Contains(out, `"node": "test-node"`) {
			t.Errorf("portico status: %v\n%s", err, out)
		}
		out, err = run(t, []string{"PORTICO_URL=" + d.url, "PORTICO_TOKEN=pt_nope", "PORTICO_INSECURE=1"}, "status")
		if err == nil || !strings.Contains(out, "401") {
			t.Errorf("portico status with a bad token: %v\n%s", err, out)
		}
	})

	t.Run("expired token", func(t *testing.T) {
		// The daemon shares the test's clock: the token expires between
		// created+ttl and minted+ttl. A request answered before the first
		// must pass; one sent after the second must not. A loaded run may
		// answer the first request only after expiry: then a new token.
		const ttl = time.Second
		c := newClient(t, d.url)
		var minted time.Time
		for try := 0; ; try++ {
			created := time.Now()
			var short struct{ Secret string }
			script.must(201, "POST", "/api/v1/tokens", map[string]string{"name": fmt.Sprintf("short-%d", try), "ttl": ttl.String()}).json(t, &short)
			minted = time.Now()
			c.token = short.Secret
			r := c.do("GET", "/api/v1/me", nil)
			if time.Now().Before(created.Add(ttl)) {
				if r.code != 200 {
					t.Fatalf("GET /api/v1/me before expiry: %d %s", r.code, r.body)
				}
				break
			}
			if try == 9 {
				t.Fatal("no request answered within the token's TTL in 10 tries")
			}
		}
		waitFor(t, 30*time.Second, func() bool {
			sent := time.Now()
			r := c.do("GET", "/api/v1/me", nil)
			if r.code == 200 && !sent.Before(minted.Add(ttl)) {
				t.Fatalf("GET /api/v1/me after expiry: 200")
			}
			return r.code == 401
		})
	})

	t.Run("auditor is read-only", func(t *testing.T) {
		script.must(201, "POST", "/api/v1/users", map[string]string{"name": "audrey", "password": "auditor-password", "role": "auditor"})
		script.must(400, "POST", "/api/v1/users", map[string]string{"name": "weak", "password": "short", "role": "auditor"})
		aud := newClient(t, d.url)
		aud.record = rec
		aud.csrf = true
		aud.must(200, "POST", "/api/v1/login", map[string]string{"username": "audrey", "password": "auditor-password"})
		aud.must(200, "GET", "/api/v1/config", nil)
		aud.must(200, "GET", "/api/v1/audit", nil)
		aud.must(403, "PUT", "/api/v1/config", baseConfig(mgmt), "If-Match", `"1"`)
		aud.must(403, "POST", "/api/v1/users", map[string]string{"name": "x", "password": "0123456789", "role": "admin"})
	})

	t.Run("lockout", func(t *testing.T) {
		c := newClient(t, d.url)
		c.record = rec
		for i := 0; i < 3; i++ {
			c.must(401, "POST", "/api/v1/login", map[string]string{"username": "audrey", "password": "guess-" + fmt.Sprint(i)})
		}
		// Locked now: even the right password is refused until the lockout ends.
		c.must(423, "POST", "/api/v1/login", map[string]string{"username": "audrey", "password": "auditor-password"})
		// A name that does not exist locks the same way (no user enumeration).
		for i := 0; i < 3; i++ {
			c.must(401, "POST", "/api/v1/login", map[string]string{"username": "nobody", "password": "guess-" + fmt.Sprint(i)})
		}
		c.must(423, "POST", "/api/v1/login", map[string]string{"username": "nobody", "password": "x"})
	})

	var cur struct {
		Version  int64
		Document string
	}
	r := script.must(200, "GET", "/api/v1/config", nil)
	r.json(t, &cur)
	if r.header.Get("ETag") != fmt.Sprintf(`"%d"`, cur.Version) {
		t.Errorf("ETag %q for version %d", r.header.Get("ETag"), cur.Version)
	}

	t.Run("invalid config refused, old one serves", func(t *testing.T) {
		bad := strings.Replace(baseConfig(mgmt), "networks: [10.0.0.0/8]", "networks: [10.0.0.0/33]", 1)
		var e struct {
			Error  string
			Fields []struct {
				Path   string
				Line   int
				Reason string
			}
		}
		script.must(422, "PUT", "/api/v1/config", bad, "If-Match", fmt.Sprintf(`"%d"`, cur.Version)).json(t, &e)
		if len(e.Fields) == 0 || e.Fields[0].Path != "interfaces.internal.networks[0]" || e.Fields[0].Line != 7 {
			t.Errorf("field errors = %+v", e.Fields)
		}
		unknown := baseConfig(mgmt) + "sipp: {}\n"
		script.must(422, "PUT", "/api/v1/config", unknown, "If-Match", fmt.Sprintf(`"%d"`, cur.Version))
		var now struct{ Version int64 }
		script.must(200, "GET", "/api/v1/config", nil).json(t, &now)
		if now.Version != cur.Version {
			t.Errorf("a refused change moved the version from %d to %d", cur.Version, now.Version)
		}
		script.must(428, "PUT", "/api/v1/config", baseConfig(mgmt))
		var v struct {
			Valid  bool
			Fields []struct{ Path string }
		}
		script.must(200, "POST", "/api/v1/config/validate", bad).json(t, &v)
		if v.Valid {
			t.Error("validate accepted a bad document")
		}
		// Parses, but the access proxy refuses it: validate says so as PUT would.
		handoff := baseConfig(mgmt) + "access_proxy:\n  enabled: true\n  listen: " + freeAddr(t) + "\n  routes:\n    - {name: w, match: {alpn: [http/1.1]}, action: handoff, handler: sip-wss}\n"
		script.must(200, "POST", "/api/v1/config/validate", handoff).json(t, &v)
		if v.Valid || len(v.Fields) == 0 || v.Fields[0].Path != "access_proxy.routes[0].handler" {
			t.Errorf("validate of a document the access proxy refuses = %+v", v)
		}
		script.must(422, "PUT", "/api/v1/config", handoff, "If-Match", fmt.Sprintf(`"%d"`, cur.Version))
		// Two services on one port.
		clash := baseConfig(mgmt) + "turn:\n  enabled: true\n  tcp: [" + mgmt + "]\n"
		script.must(422, "PUT", "/api/v1/config", clash, "If-Match", fmt.Sprintf(`"%d"`, cur.Version)).json(t, &e)
		if len(e.Fields) == 0 || e.Fields[0].Path != "turn.tcp[0]" {
			t.Errorf("port conflict fields = %+v", e.Fields)
		}
	})

	t.Run("config replace with optimistic concurrency", func(t *testing.T) {
		next := strings.Replace(baseConfig(mgmt), "level: info", "level: debug", 1)
		var res struct {
			Version int64
			Changed []string
		}
		script.must(200, "PUT", "/api/v1/config", next, "If-Match", fmt.Sprintf(`"%d"`, cur.Version)).json(t, &res)
		if res.Version != cur.Version+1 || strings.Join(res.Changed, ",") != "log" {
			t.Errorf("replace = %+v", res)
		}
		// The same base version again is now stale.
		script.must(412, "PUT", "/api/v1/config", baseConfig(mgmt), "If-Match", fmt.Sprintf(`"%d"`, cur.Version))
		var vs []struct {
			Version int64
			Author  string
		}
		script.must(200, "GET", "/api/v1/config/versions", nil).json(t, &vs)
		if len(vs) < 2 || vs[0].Author != "admin" || !strings.HasPrefix(vs[len(vs)-1].Author, "file:") {
			t.Errorf("versions = %+v", vs)
		}
		script.must(200, "GET", fmt.Sprintf("/api/v1/config/versions/%d", cur.Version), nil)
		cur.Version = res.Version
	})

	t.Run("store change refused live", func(t *testing.T) {
		pg := strings.Replace(baseConfig(mgmt), "backend: sqlite", "backend: postgres\n  dsn: postgres://x@127.0.0.1:1/x", 1)
		var e struct{ Fields []struct{ Path string } }
		script.must(422, "PUT", "/api/v1/config", pg, "If-Match", fmt.Sprintf(`"%d"`, cur.Version)).json(t, &e)
		if len(e.Fields) == 0 || e.Fields[0].Path != "store" {
			t.Errorf("fields = %+v", e.Fields)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		r := anon.must(200, "GET", "/metrics", nil)
		for _, want := range []string{"portico_store_up 1", fmt.Sprintf("portico_config_version %d", cur.Version), "go_goroutines"} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})

	t.Run("audit log", func(t *testing.T) {
		var es []struct{ Action, User string }
		script.must(200, "GET", "/api/v1/audit?limit=1000", nil).json(t, &es)
		seen := map[string]bool{}
		for _, e := range es {
			seen[e.Action] = true
		}
		for _, want := range []string{"login", "login.failed", "token.create", "user.create", "config.replace"} {
			if !seen[want] {
				t.Errorf("audit log has no %q entry", want)
			}
		}
	})

	t.Run("SIGHUP keeps a newer API edit; config import --force wins", func(t *testing.T) {
		// The API edit above is newer than the file's import: a changed
		// file is refused with a warning and the API's version stays.
		doc := strings.Replace(baseConfig(mgmt), "level: info", "level: warn", 1)
		os.WriteFile(d.cfgPath, []byte(doc), 0o600)
		d.signal(syscall.SIGHUP)
		waitFor(t, 10*time.Second, func() bool { return strings.Contains(readLog(t, dir), "configuration file not imported") })
		var st struct {
			Config struct {
				Version    int64
				Source     string
				Author     string
				FileImport struct{ State string } `json:"file_import"`
			}
		}
		script.must(200, "GET", "/api/v1/status", nil).json(t, &st)
		if st.Config.Version != cur.Version || st.Config.Source != "api" || st.Config.Author != "admin" || st.Config.FileImport.State != "refused" {
			t.Errorf("status config after a refused SIGHUP = %+v (want version %d by admin, refused)", st.Config, cur.Version)
		}
		if out, err := run(t, nil, "config", "import", d.cfgPath, "--data", filepath.Join(dir, "data")); err == nil {
			t.Errorf("config import over an API edit succeeded:\n%s", out)
		}
		if out, err := run(t, nil, "config", "import", d.cfgPath, "--data", filepath.Join(dir, "data"), "--force"); err != nil {
			t.Fatalf("config import --force: %v\n%s", err, out)
		}
		d.signal(syscall.SIGHUP) // takes up the store's newer version
		waitFor(t, 10*time.Second, func() bool {
			var now struct {
				Version int64
				Source  string
			}
			script.must(200, "GET", "/api/v1/config", nil).json(t, &now)
			return now.Version == cur.Version+1 && now.Source == "file"
		})
		cur.Version++
		os.WriteFile(d.cfgPath, []byte("version: 1\nlog: {level: shout}\n"), 0o600)
		d.signal(syscall.SIGHUP)
		waitFor(t, 10*time.Second, func() bool { return strings.Contains(readLog(t, dir), "configuration refused") })
		var now struct{ Version int64 }
		script.must(200, "GET", "/api/v1/config", nil).json(t, &now)
		if now.Version != cur.Version {
			t.Errorf("a bad file on SIGHUP moved the version to %d", now.Version)
		}
	})

	t.Run("listener moves live", func(t *testing.T) {
		mgmt2 := freeAddr(t)
		var res struct{ Changed []string }
		script.must(200, "PUT", "/api/v1/config", baseConfig(mgmt2), "If-Match", fmt.Sprintf(`"%d"`, cur.Version)).json(t, &res)
		moved := newClient(t, "https://"+mgmt2)
		moved.token = tok.Secret
		waitFor(t, 10*time.Second, func() bool {
			r, err := insecureClient(nil).Get("https://" + mgmt2 + "/healthz")
			if err == nil {
				r.Body.Close()
			}
			return err == nil
		})
		moved.must(200, "GET", "/api/v1/status", nil)
		waitFor(t, 15*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", mgmt, time.Second)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		d.url = "https://" + mgmt2
	})

	if err := d.stop(); err != nil {
		t.Errorf("SIGTERM: exit %v\n%s", err, d.out.String())
	}
	if got := oc.summary(); len(got) < 20 {
		t.Errorf("only %d responses were checked against the OpenAPI document: %v", len(got), got)
	}
	if strings.Contains(readLog(t, dir), adminPassword) || strings.Contains(readLog(t, dir), tok.Secret) {
		t.Error("a secret appears in the log")
	}
}

func readLog(t *testing.T, dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "data", "log", "portico.log"))
	return string(b)
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBadStartRefused: a bad config file or an unreachable store gives a
// clear message and a non-zero exit.
func TestBadStartRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemon; skipped under -short")
	}
	dir := t.TempDir()
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", "version: 1\nmanagment: {}\n", `managment (line 2, column 1): unknown field (did you mean "management"?)`},
		{"bad port", "version: 1\nmanagement: {listen: '127.0.0.1:99999'}\n", "management.listen"},
		{"unreachable store", "version: 1\nstore: {backend: postgres, dsn: 'postgres://portico:s3cret-pw@127.0.0.1:1/portico?connect_timeout=2'}\nmanagement: {listen: '" + freeAddr(t) + "'}\n", "127.0.0.1:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			os.WriteFile(f, []byte(tc.doc), 0o600)
			out, err := run(t, nil, "serve", "--config", f, "--data", filepath.Join(dir, "data-"+tc.name))
			if err == nil {
				t.Fatalf("serve started with a bad start:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
			if strings.Contains(out, "s3cret-pw") {
				t.Errorf("the DSN password was printed:\n%s", out)
			}
		})
	}
	t.Run("config validate", func(t *testing.T) {
		f := filepath.Join(dir, "v.yaml")
		os.WriteFile(f, []byte("version: 1\nmedia:\n  external: {port_min: 40000, port_max: 45000}\n  internal: {port_min: 44000, port_max: 50000}\n"), 0o600)
		out, err := run(t, nil, "config", "validate", f)
		if err == nil || !strings.Contains(out, "media.internal (line 4, column 13): 44000-50000 overlaps media.external 40000-45000") {
			t.Errorf("config validate: %v\n%s", err, out)
		}
		out, err = run(t, nil, "config", "validate", "../examples/portico.yaml")
		if err != nil {
			t.Errorf("example config invalid: %v\n%s", err, out)
		}
	})
}
