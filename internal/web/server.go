package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// sessionCookie is the API's login session cookie (api.SessionCookie).
const sessionCookie = "portico_session"

// preCookie carries the CSRF secret of the sign-in form, before a session exists.
const preCookie = "portico_csrf"

// csp is the Content-Security-Policy of every console response: scripts and
// styles only from the console's own embedded files, no inline script, no
// framing of the console. object-src and frame-src 'self' let a call's
// ladder diagram (an SVG document served by the API) be embedded.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'self'; frame-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Config tunes the console.
type Config struct {
	// SampleInterval is how often the dashboard's ring samples the metrics.
	// Default 10s.
	SampleInterval time.Duration
	// Window is how much history the ring keeps for the plots. Default 1h
	// (360 samples at the default interval).
	Window time.Duration
	// StreamInterval is how often a live page's event stream sends fresh
	// data. Default 2s.
	StreamInterval time.Duration
}

// Deps is what the console serves from.
type Deps struct {
	// API is the REST API handler; the console calls it in-process and
	// also passes it every request it does not serve itself (/api/,
	// /healthz, /readyz, /metrics).
	API http.Handler
	// Gatherer is the node's Prometheus registry, sampled for the plots.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Server is the console's HTTP handler.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	mux     *http.ServeMux
	pages   map[string]*template.Template
	csrfKey []byte
	ring    *ring
	// stopped is closed when Run returns, ending the event streams so a
	// shutdown need not wait for them.
	stopped  chan struct{}
	stopOnce sync.Once
}

// New builds the console; it does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.API == nil {
		return nil, errors.New("web: API is required")
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = 10 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.StreamInterval <= 0 {
		cfg.StreamInterval = 2 * time.Second
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Gatherer == nil {
		deps.Gatherer = prometheus.NewRegistry()
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("web: csrf key: %w", err)
	}
	n := int(cfg.Window / cfg.SampleInterval)
	s := &Server{
		cfg: cfg, deps: deps, log: deps.Logger.With("component", "web"),
		mux: http.NewServeMux(), pages: pages, csrfKey: key, ring: newRing(max(n, 2)), stopped: make(chan struct{}),
	}
	s.routes()
	return s, nil
}

// Run samples the metrics into the ring until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	defer s.stopOnce.Do(func() { close(s.stopped) })
	t := time.NewTicker(s.cfg.SampleInterval)
	defer t.Stop()
	s.sample()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.sample()
		}
	}
}

// ServeHTTP serves the console, and the API under its own paths.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	m := s.mux
	for _, p := range []string{"/api/", "/healthz", "/readyz", "/metrics"} {
		m.Handle(p, s.deps.API)
	}
	static, _ := fs.Sub(staticFS, "static")
	fileServer := http.StripPrefix("/static/", http.FileServerFS(static))
	m.Handle("GET /static/", secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		fileServer.ServeHTTP(w, r)
	})))
	m.Handle("GET /login", secure(http.HandlerFunc(s.loginPage)))
	m.Handle("POST /login", secure(http.HandlerFunc(s.loginSubmit)))
	m.Handle("POST /logout", s.page(s.logout))
	m.Handle("GET /{$}", s.page(s.dashboard))
	m.Handle("GET /stream/dashboard", s.page(s.streamDashboard))
	m.Handle("GET /stream/live", s.page(s.streamLive))
	m.Handle("GET /plot/{name}", s.page(s.plot))
	s.liveRoutes()
	s.historyRoutes()
	s.configRoutes()
	s.adminRoutes()
	s.diagnosticsRoutes()
	m.Handle("/", secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "404 page not found\n")
	})))
}

// secure sets the console's security headers.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Strict-Transport-Security", "max-age=31536000")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// user is the signed-in caller as the API reports it.
type user struct {
	Name  string `json:"user"`
	Role  string `json:"role"`
	Admin bool   `json:"-"`
	CSRF  string `json:"-"`
}

type pageHandler func(w http.ResponseWriter, r *http.Request, u user)

// page authenticates the request through the API (GET /api/v1/me); a
// caller without a valid session is sent to the sign-in page. A POST must
// carry the CSRF token of the session.
func (s *Server) page(h pageHandler) http.Handler {
	return secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := s.call(r, http.MethodGet, "/api/v1/me", nil, "")
		if res.code == http.StatusUnauthorized {
			switch {
			case strings.HasPrefix(r.URL.Path, "/stream/") || strings.HasPrefix(r.URL.Path, "/plot/"):
				http.Error(w, "sign in first", http.StatusUnauthorized)
			case r.Method == http.MethodGet:
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			default: // a form posted after the session ended: sign in again, then redo it
				http.Redirect(w, r, "/login", http.StatusSeeOther)
			}
			return
		}
		var u user
		if res.code != http.StatusOK || json.Unmarshal(res.body, &u) != nil {
			http.Error(w, "the API did not answer: "+res.message(), http.StatusServiceUnavailable)
			return
		}
		c, _ := r.Cookie(sessionCookie)
		u.Admin = u.Role == "admin"
		u.CSRF = s.csrfToken(c.Value)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		if r.Method == http.MethodPost && !s.csrfOK(r, c.Value) {
			http.Error(w, "the form's CSRF token is missing or stale; reload the page", http.StatusForbidden)
			return
		}
		h(w, r, u)
	}))
}

// maxForm caps a posted form: a restore archive (the API's own limit) and
// the rest of its form.
const maxForm = restoreMax + 1<<20

// csrfToken is bound to one secret (a session or a pre-session cookie).
func (s *Server) csrfToken(secret string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil))
}

// csrfOK checks the token a form posted (field csrf, or the X-CSRF-Token
// header of a script) against secret. Multipart bodies are parsed here, up
// to the certificate and restore upload limits.
func (s *Server) csrfOK(r *http.Request, secret string) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			if r.ParseMultipartForm(8<<20) != nil {
				return false
			}
		}
		got = r.PostFormValue("csrf")
	}
	want := s.csrfToken(secret)
	return secret != "" && hmac.Equal([]byte(got), []byte(want))
}

// result is an in-process API response.
type result struct {
	code   int
	header http.Header
	body   []byte
}

// message is the API's error text, or the status.
func (r result) message() string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(r.body, &e) == nil && e.Error != "" {
		return e.Error
	}
	if r.code == 0 {
		return "no answer"
	}
	return http.StatusText(r.code)
}

func (r result) ok() bool { return r.code >= 200 && r.code < 300 }

func (r result) decode(v any) error {
	if !r.ok() {
		return errors.New(r.message())
	}
	return json.Unmarshal(r.body, v)
}

// recorder collects an in-process API response.
type recorder struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.h }
func (w *recorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *recorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.buf.Write(b)
}

// call makes an API request on behalf of r's caller: the same session
// cookie and client address, and the X-Requested-With header the API asks
// of session requests that change state (the console checked its own
// CSRF token first). body is JSON-encoded unless it is a []byte or an
// io.Reader sent as ctype. hdr are extra header name, value pairs.
func (s *Server) call(r *http.Request, method, path string, body any, ctype string, hdr ...string) result {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return result{code: http.StatusInternalServerError, body: []byte(`{"error":"encode request"}`)}
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, rd)
	if err != nil {
		return result{code: http.StatusBadRequest, body: []byte(`{"error":"bad request path"}`)}
	}
	req.RemoteAddr = r.RemoteAddr
	req.TLS = r.TLS
	req.Host = r.Host
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		req.AddCookie(c)
	}
	if method != http.MethodGet {
		req.Header.Set("X-Requested-With", "portico-console")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := &recorder{h: http.Header{}}
	s.deps.API.ServeHTTP(w, req)
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return result{code: w.code, header: w.h, body: w.buf.Bytes()}
}

// getJSON reads path into v; the error is the API's message.
func (s *Server) getJSON(r *http.Request, path string, v any) error {
	return s.call(r, http.MethodGet, path, nil, "").decode(v)
}

// flash is a one-line outcome shown at the top of a page.
type flash struct {
	OK   bool
	Text string
}

// view is what every page template receives.
type view struct {
	Title  string
	Nav    string
	User   user
	Flash  *flash
	Data   any
	Narrow bool
}

func (s *Server) render(w http.ResponseWriter, code int, name string, v view) {
	t := s.pages[name]
	if t == nil {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		s.log.Error("render", "page", name, "err", err)
		http.Error(w, "page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// outcome is the flash of an API result: its error, or ok.
func outcome(res result, ok string) *flash {
	if res.ok() {
		return &flash{OK: true, Text: ok}
	}
	return &flash{Text: fmt.Sprintf("refused (%d): %s", res.code, res.message())}
}

// redirectFlash sends the browser back to path with a one-line outcome in
// the query (shown by the page; the text is the API's, escaped on render).
func redirectFlash(w http.ResponseWriter, r *http.Request, path string, f *flash) {
	q := url.Values{}
	if f.OK {
		q.Set("ok", f.Text)
	} else {
		q.Set("err", f.Text)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	http.Redirect(w, r, path+sep+q.Encode(), http.StatusSeeOther)
}

// flashOf reads the outcome redirectFlash put in the query.
func flashOf(r *http.Request) *flash {
	if t := r.URL.Query().Get("ok"); t != "" {
		return &flash{OK: true, Text: t}
	}
	if t := r.URL.Query().Get("err"); t != "" {
		return &flash{Text: t}
	}
	return nil
}

// failCode is the HTTP status a page answers with after an API refusal:
// the API's own (403 for an auditor's change), so a script sees it too.
func failCode(res result) int {
	if res.ok() {
		return http.StatusOK
	}
	return res.code
}
