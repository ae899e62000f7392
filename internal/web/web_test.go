package web

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/sqlite"
)

// storeConfig is the configuration service of these tests: documents are
// checked by config.Parse and stored as they are (the node's own service
// also builds the services; that is tested with the daemon).
type storeConfig struct{ store.Store }

func (c storeConfig) Active(ctx context.Context) (store.ConfigVersion, error) {
	return c.ActiveConfig(ctx)
}

func (c storeConfig) Validate(ctx context.Context, doc []byte) error {
	_, err := config.Parse(doc)
	return err
}

func (c storeConfig) Replace(ctx context.Context, doc []byte, author, comment string, expect int64) (store.ConfigVersion, []string, error) {
	if _, err := config.Parse(doc); err != nil {
		return store.ConfigVersion{}, nil, err
	}
	v, err := c.PutConfig(ctx, doc, author, comment, expect)
	return v, nil, err
}

// console is the console in front of a real API on a real SQLite store.
type console struct {
	t   *testing.T
	s   *Server
	st  store.Store
	jar map[string]*http.Cookie
}

func newConsole(t *testing.T, reg prometheus.Gatherer) *console {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, u := range []struct {
		name string
		role store.Role
	}{{"admin", store.RoleAdmin}, {"audrey", store.RoleAuditor}} {
		hash, _ := bcrypt.GenerateFromPassword([]byte(u.name+"-password"), bcrypt.MinCost)
		if err := st.CreateUser(ctx, store.User{Name: u.name, PasswordHash: hash, Role: u.role}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PutConfig(ctx, []byte("version: 1\nnode:\n  name: unit\n"), "test", "first", 0); err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{}, api.Deps{Store: st, Config: storeConfig{st}, Ready: func(context.Context) []api.Check {
		return []api.Check{{Name: "store", OK: true}}
	}, Routes: func(context.Context) []api.InterfaceRoutes {
		// A stand-in for the OS's routes (read by netlink in internal/app,
		// tested there in a namespace of its own).
		return []api.InterfaceRoutes{{Interface: "internal", Address: "10.1.0.5", Link: "eth-in",
			Routes:   []api.Route{{Destination: "10.20.0.0/16", Gateway: "10.1.0.1", Device: "eth-in", Table: "main"}},
			Networks: []api.NetworkRoute{{Network: "10.30.0.0/16", Device: "eth-out", Gateway: "192.0.2.1"}}}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{}, Deps{API: a, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return &console{t: t, s: s, st: st, jar: map[string]*http.Cookie{}}
}

func (c *console) do(method, path string, form url.Values) *http.Response {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "https://portico.test"+path, body)
	r.RemoteAddr = "192.0.2.10:40000"
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, ck := range c.jar {
		r.AddCookie(ck)
	}
	w := httptest.NewRecorder()
	c.s.ServeHTTP(w, r)
	res := w.Result()
	for _, ck := range res.Cookies() {
		if ck.MaxAge < 0 {
			delete(c.jar, ck.Name)
		} else {
			c.jar[ck.Name] = ck
		}
	}
	return res
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func body(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func (c *console) token(path string) string {
	c.t.Helper()
	m := csrfField.FindStringSubmatch(body(c.do("GET", path, nil)))
	if m == nil {
		c.t.Fatalf("no CSRF token on %s", path)
	}
	return m[1]
}

func (c *console) signIn(user string) {
	c.t.Helper()
	tok := c.token("/login")
	r := c.do("POST", "/login", url.Values{"csrf": {tok}, "username": {user}, "password": {user + "-password"}, "next": {"/"}})
	if r.StatusCode != http.StatusSeeOther || c.jar["portico_session"] == nil {
		c.t.Fatalf("sign-in as %s: %d %s", user, r.StatusCode, body(r))
	}
}

func TestSignInCSRFAndHeaders(t *testing.T) {
	c := newConsole(t, nil)
	r := c.do("GET", "/", nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?next=%2F" {
		t.Fatalf("signed out: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := c.do("POST", "/login", url.Values{"username": {"admin"}, "password": {"admin-password"}}); r.StatusCode != http.StatusForbidden || c.jar["portico_session"] != nil {
		t.Fatalf("sign-in without a CSRF token: %d", r.StatusCode)
	}
	tok := c.token("/login")
	if r := c.do("POST", "/login", url.Values{"csrf": {tok}, "username": {"admin"}, "password": {"wrong"}}); r.StatusCode != http.StatusUnauthorized || !strings.Contains(body(r), "invalid username or password") {
		t.Fatalf("wrong password: %d", r.StatusCode)
	}
	c.signIn("admin")
	ck := c.jar["portico_session"]
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode {
		t.Errorf("session cookie %+v", ck)
	}
	r = c.do("GET", "/", nil)
	page := body(r)
	if r.StatusCode != http.StatusOK || !strings.Contains(page, `id="dashboard"`) {
		t.Fatalf("dashboard: %d", r.StatusCode)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if r.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options %q", r.Header.Get("X-Frame-Options"))
	}
	if regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]|\son[a-z]+\s*=`).MatchString(page) {
		t.Error("inline script on the dashboard")
	}
	// The open redirect after sign-in stays on the console.
	for next, want := range map[string]string{"/calls": "/calls", "//evil.example/": "/", "https://evil.example/": "/", "/\\evil": "/"} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
	if r := c.do("POST", "/logout", url.Values{}); r.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out without a CSRF token: %d", r.StatusCode)
	}
	tok = csrfField.FindStringSubmatch(page)[1]
	if r := c.do("POST", "/logout", url.Values{"csrf": {tok}}); r.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-out: %d", r.StatusCode)
	}
	if r := c.do("GET", "/config", nil); r.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out: %d", r.StatusCode)
	}
	if r := c.do("POST", "/users", url.Values{"csrf": {tok}, "name": {"x"}}); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Errorf("a form posted after sign-out: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := c.do("GET", "/stream/live", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("a stream after sign-out: %d", r.StatusCode)
	}
	// The API stays reachable behind the console.
	if r := c.do("GET", "/healthz", nil); r.StatusCode != http.StatusOK {
		t.Errorf("/healthz through the console: %d", r.StatusCode)
	}
}

func TestAuditorRefusedByTheAPI(t *testing.T) {
	c := newConsole(t, nil)
	c.signIn("audrey")
	tok := c.token("/users")
	r := c.do("POST", "/users", url.Values{"csrf": {tok}, "name": {"mallory"}, "password": {"mallory-password"}, "role": {"admin"}})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(body(r), "needs admin") {
		t.Fatalf("auditor creating a user: %d", r.StatusCode)
	}
	if _, err := c.st.User(context.Background(), "mallory"); err == nil {
		t.Fatal("the auditor's user was created")
	}
	// Reading is allowed.
	for _, p := range []string{"/", "/calls", "/registrations", "/history/calls", "/history/registrations", "/config", "/audit", "/certificates", "/users", "/maintenance"} {
		if r := c.do("GET", p, nil); r.StatusCode != http.StatusOK {
			t.Errorf("auditor GET %s: %d", p, r.StatusCode)
		}
	}
}

func TestConfigFieldErrorsAndSave(t *testing.T) {
	c := newConsole(t, nil)
	c.signIn("admin")
	tok := c.token("/config")
	bad := "version: 1\r\nnode:\r\n  name: unit\r\n  drain_timeout: banana\r\n"
	r := c.do("POST", "/config/validate", url.Values{"csrf": {tok}, "document": {bad}})
	page := body(r)
	if r.StatusCode != http.StatusUnprocessableEntity || !regexp.MustCompile(`(?s)<div id="L4" class="bad">.*drain_timeout: banana</div><div class="msg field-error" data-path="node.drain_timeout">`).MatchString(page) {
		t.Fatalf("validate: %d\n%s", r.StatusCode, page)
	}
	r = c.do("POST", "/config", url.Values{"csrf": {tok}, "document": {strings.Replace(bad, "banana", "3s", 1)}, "expect": {"1"}, "comment": {"unit"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d %s", r.StatusCode, body(r))
	}
	v, err := c.st.ActiveConfig(context.Background())
	if err != nil || v.Version != 2 || strings.Contains(string(v.Document), "\r") {
		t.Fatalf("stored: %d %q %v", v.Version, v.Document, err)
	}
	// A stale editor (based on version 1) is refused by the API.
	r = c.do("POST", "/config", url.Values{"csrf": {tok}, "document": {"version: 1\n"}, "expect": {"1"}})
	if r.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("stale save: %d", r.StatusCode)
	}
	r = c.do("POST", "/config/rollback", url.Values{"csrf": {tok}, "version": {"1"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("rollback: %d %s", r.StatusCode, body(r))
	}
	v, _ = c.st.ActiveConfig(context.Background())
	if v.Version != 3 || strings.Contains(string(v.Document), "drain_timeout") {
		t.Errorf("after rollback: version %d %q", v.Version, v.Document)
	}
	if page := body(c.do("GET", "/config/diff?a=1&b=2", nil)); !strings.Contains(page, `<span class="add">+   drain_timeout: 3s</span>`) {
		t.Errorf("diff:\n%s", page)
	}
}

func TestHistoryFiltersAndExport(t *testing.T) {
	c := newConsole(t, nil)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, rec := range []store.CallRecord{
		{ID: "c1", Protocol: "sip", CallType: "guest", From: "sip:alice@x", To: "sip:vmr@y", Disposition: "normal", EndedAt: t0},
		{ID: "c2", Protocol: "h323", CallType: "registered", From: "=HYPERLINK(\"x\")", To: "1000", Disposition: "callee busy", EndedAt: t0.Add(time.Minute)},
		{ID: "c3", Protocol: "sip", CallType: "guest", From: "sip:bob@x", To: "sip:vmr@y", Disposition: "policy: destination not allowed", EndedAt: t0.Add(time.Hour)},
	} {
		rec.StartedAt = rec.EndedAt.Add(-time.Duration(i+1) * time.Minute)
		if err := c.st.AddCall(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	c.signIn("admin")
	read := func(q string) [][]string {
		t.Helper()
		r := c.do("GET", "/history/calls?export=csv&"+q, nil)
		recs, err := csv.NewReader(r.Body).ReadAll()
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", q, r.StatusCode, err)
		}
		return recs
	}
	ids := func(recs [][]string) string {
		var s []string
		for _, r := range recs[1:] {
			s = append(s, r[0])
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct{ name, q, want string }{
		{"all", "", "c3,c2,c1"},
		{"protocol", "protocol=h323", "c2"},
		{"type", "type=guest", "c3,c1"},
		{"disposition", "disposition=busy", "c2"},
		{"party", "party=bob", "c3"},
		{"party and disposition", "party=x&disposition=normal", "c1"},
		{"time range", "since=2026-03-01T12:30&until=2026-03-01T14:00", "c3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(read(tc.q)); got != tc.want {
				t.Errorf("%s: %s, want %s", tc.q, got, tc.want)
			}
		})
	}
	if recs := read("protocol=h323"); recs[1][3] != `'=HYPERLINK("x")` {
		t.Errorf("a formula is exported as a formula: %q", recs[1][3])
	}
	if r := c.do("GET", "/history/calls?since=yesterday", nil); !strings.Contains(body(r), "since must be a date") {
		t.Error("a bad time is not reported")
	}
	// A recorded call's page embeds its ladder diagram and links its pcap.
	page := body(c.do("GET", "/calls/c2", nil))
	if !strings.Contains(page, `<object class="ladder" type="image/svg+xml" data="/api/v1/calls/c2/ladder.svg"`) || !strings.Contains(page, `href="/api/v1/calls/c2/ladder.pcap"`) || !strings.Contains(page, "callee busy") {
		t.Errorf("call page:\n%s", page)
	}
	if r := c.do("GET", "/calls/nope", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown call: %d", r.StatusCode)
	}
	r := c.do("GET", "/history/calls?export=json&protocol=sip", nil)
	if b := body(r); r.Header.Get("Content-Type") != "application/json" || !strings.Contains(b, `"id": "c3"`) || strings.Contains(b, `"id": "c2"`) {
		t.Errorf("JSON export: %s", b)
	}
}

func TestDiffLines(t *testing.T) {
	for _, tc := range []struct{ name, a, b, want string }{
		{"same", "a\nb", "a\nb", " a  b"},
		{"changed", "a\nb\nc", "a\nx\nc", " a -b +x  c"},
		{"added", "a", "a\nb", " a +b"},
		{"removed", "a\nb", "b", "-a  b"},
		{"empty", "", "a", "- +a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var parts []string
			for _, l := range diffLines(tc.a, tc.b) {
				parts = append(parts, l.Op+l.Text)
			}
			if got := strings.Join(parts, " "); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRingAndPlot(t *testing.T) {
	reg := prometheus.NewRegistry()
	regs := prometheus.NewGauge(prometheus.GaugeOpts{Name: "portico_sip_registrations"})
	pkts := prometheus.NewCounter(prometheus.CounterOpts{Name: "portico_media_packets_total"})
	bytes := prometheus.NewCounter(prometheus.CounterOpts{Name: "portico_media_forwarded_bytes_total"})
	lost := prometheus.NewCounter(prometheus.CounterOpts{Name: "portico_media_packets_lost_total"})
	reg.MustRegister(regs, pkts, bytes, lost)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newConsole(t, reg)
	c.s.deps.Now = func() time.Time { return now }
	for i := 0; i < 400; i++ { // more than the ring holds
		regs.Set(float64(i % 7))
		pkts.Add(1000)
		bytes.Add(125000)
		lost.Add(5)
		c.s.sample()
		now = now.Add(10 * time.Second)
	}
	all := c.s.ring.all()
	if len(all) != 360 || !all[0].T.Before(all[359].T) {
		t.Fatalf("ring holds %d samples, first %v last %v", len(all), all[0].T, all[len(all)-1].T)
	}
	last := all[359]
	if last.RelayPPS != 100 || last.RelayMbps != 0.1 || last.RelayLostPS != 0.5 || last.SIPRegs != float64(399%7) {
		t.Errorf("last sample %+v", last.gauges)
	}
	svg := drawPlot("Registrations", "bindings", plots["registrations.svg"].Series, all, now, time.Hour)
	if err := xml.Unmarshal(svg, new(struct{})); err != nil || !strings.Contains(string(svg), "<polyline") {
		t.Errorf("plot is not SVG with a line: %v\n%s", err, svg)
	}
	c.signIn("admin")
	for _, name := range []string{"relay.svg", "loss.svg"} {
		r := c.do("GET", "/plot/"+name, nil)
		svg := body(r)
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(svg, "<polyline") {
			t.Errorf("plot %s: %d %q\n%s", name, r.StatusCode, r.Header.Get("Content-Type"), svg)
		}
	}
	if page := body(c.do("GET", "/", nil)); !strings.Contains(page, `src="/plot/loss.svg"`) {
		t.Errorf("dashboard has no loss plot:\n%s", page)
	}
	if r := c.do("GET", "/plot/nothing.svg", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown plot: %d", r.StatusCode)
	}
}

func TestCertUsers(t *testing.T) {
	got := certUsers("sip:\n  certificate: edge\naccess_proxy:\n  routes:\n    - {certificate: edge}\n    - {certificate: other}\nturn: {certificate: \"\"}\n")
	if strings.Join(got["edge"], ",") != "sip.certificate,access_proxy.routes[0].certificate" || strings.Join(got["other"], ",") != "access_proxy.routes[1].certificate" || len(got) != 2 {
		t.Errorf("certUsers: %v", got)
	}
	if len(certUsers("{{{ not yaml")) != 0 {
		t.Error("a document that is not YAML names certificates")
	}
}

// FuzzCertUsers: any document, YAML or not, is walked without a panic.
func FuzzCertUsers(f *testing.F) {
	f.Add("sip:\n  certificate: edge\n")
	f.Add("a: [ {certificate: x}, [ {certificate: y} ] ]")
	f.Add("&a [*a]")
	f.Fuzz(func(t *testing.T, doc string) {
		certUsers(doc)
	})
}

// TestStreams: the event streams send their data at once, and a stream
// ends when the session does.
func TestStreams(t *testing.T) {
	c := newConsole(t, nil)
	c.signIn("admin")
	srv := httptest.NewTLSServer(c.s)
	defer srv.Close()
	// open reads a stream up to its first event and returns its data line.
	open := func(path, event string) (*http.Response, *bufio.Reader, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.AddCookie(c.jar["portico_session"])
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("%s: content type %q", path, ct)
		}
		rd := bufio.NewReader(resp.Body)
		for {
			l, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("%s ended before its first event: %v", path, err)
			}
			if l == "event: "+event+"\n" {
				data, _ := rd.ReadString('\n')
				return resp, rd, data
			}
		}
	}
	for _, tc := range []struct{ path, event, field string }{
		{"/stream/dashboard", "dashboard", `"checks":[{"name":"store","ok":true}]`},
		{"/stream/live", "live", `"sip":false`},
	} {
		resp, _, data := open(tc.path, tc.event)
		resp.Body.Close()
		if !strings.HasPrefix(data, "data: {") || !strings.Contains(data, tc.field) {
			t.Errorf("%s: %q", tc.path, data)
		}
	}
	// Revoke the session while a stream runs: it says so and ends.
	resp, rd, _ := open("/stream/live", "live")
	defer resp.Body.Close()
	if err := c.st.DeleteToken(context.Background(), sessionID(t, c)); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rd)
	if err != nil || !strings.HasSuffix(string(rest), "event: signedout\ndata: {}\n\n") {
		t.Errorf("stream of a revoked session: %v %q", err, rest)
	}
}

// sessionID is the store ID of the console's session token.
func sessionID(t *testing.T, c *console) string {
	t.Helper()
	ts, err := c.st.Tokens(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range ts {
		if tk.Kind == store.TokenSession {
			return tk.ID
		}
	}
	t.Fatal("no session token")
	return ""
}

// TestDiagnosticsForAdmins: the diagnostics page and its navigation entry
// are an admin's; an auditor's ping is refused by the API itself; without
// a SIP edge the admin's ping shows the API's refusal.
func TestDiagnosticsForAdmins(t *testing.T) {
	c := newConsole(t, nil)
	c.signIn("audrey")
	tok := c.token("/")
	if strings.Contains(body(c.do("GET", "/", nil)), `href="/diagnostics"`) {
		t.Error("an auditor's navigation links the diagnostics")
	}
	if r := c.do("GET", "/diagnostics", nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("auditor GET /diagnostics: %d", r.StatusCode)
	}
	if r := c.do("POST", "/diagnostics/sip-options", url.Values{"csrf": {tok}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("auditor's ping: %d", r.StatusCode)
	}
	a := newConsole(t, nil)
	a.signIn("admin")
	page := body(a.do("GET", "/", nil))
	if !strings.Contains(page, `href="/diagnostics"`) {
		t.Error("an admin's navigation lacks the diagnostics")
	}
	r := a.do("GET", "/diagnostics", nil)
	if p := body(r); r.StatusCode != http.StatusOK || !strings.Contains(p, `id="ping-target"`) || !strings.Contains(p, `id="trace-form"`) {
		t.Errorf("admin GET /diagnostics: %d %s", r.StatusCode, p)
	} else if !strings.Contains(p, "10.20.0.0/16") || !strings.Contains(p, "internal 10.1.0.5 on eth-in") || !strings.Contains(p, "no: check the routes") {
		t.Errorf("diagnostics page lacks the routes each side uses: %s", p)
	}
	r = a.do("POST", "/diagnostics/sip-options", url.Values{"csrf": {a.token("/diagnostics")}, "target": {"sip:127.0.0.1:9"}})
	if p := body(r); r.StatusCode != http.StatusNotFound || !strings.Contains(p, "refused (404)") || !strings.Contains(p, `value="sip:127.0.0.1:9"`) {
		t.Errorf("ping without a SIP edge: %d %s", r.StatusCode, p)
	}
}
