// Package api serves Portico's REST API under /api/v1 (JSON), the health and
// readiness probes, Prometheus metrics and the OpenAPI 3 document.
//
// Callers authenticate with a login session cookie (the web UI) or a bearer
// token (scripts). Admins may change things; auditors may only read. Every
// change is written to the audit log; failed logins are rate-limited per
// client address and lock the account after repeated failures.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/crypto/bcrypt"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/store"
)

//go:embed openapi.json
var openAPIDoc []byte

// SessionCookie is the name of the login session cookie.
const SessionCookie = "portico_session"

// maxBody caps request bodies other than restore archives.
const maxBody = 1 << 20

// ConfigService reads and replaces the running configuration.
type ConfigService interface {
	// Active returns the running configuration's stored version.
	Active(ctx context.Context) (store.ConfigVersion, error)
	// Validate checks doc exactly as Replace would (the services are built,
	// not started) without storing or applying it; config.Errors on refusal.
	Validate(ctx context.Context, doc []byte) error
	// Replace validates doc, stores it as a new version if the active one is
	// still expect, and applies it live. It returns the sections that changed.
	// A validation failure returns config.Errors and changes nothing.
	Replace(ctx context.Context, doc []byte, author, comment string, expect int64) (store.ConfigVersion, []string, error)
}

// BackupService makes and restores backup archives.
type BackupService interface {
	Backup(ctx context.Context, w io.Writer) error
	// Restore validates the whole archive before replacing anything.
	Restore(ctx context.Context, r io.Reader) error
}

// Check is one readiness check. Info is shown without failing the check
// (a backlog, a count).
type Check struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Info  string `json:"info,omitempty"`
}

// Config tunes authentication.
type Config struct {
	SessionTTL         time.Duration // default 12h
	MaxLoginFailures   int           // default 5
	Lockout            time.Duration // default 15m
	LoginRatePerMinute int           // default 20
}

// Deps is what the API serves from.
type Deps struct {
	Store    store.Store
	Logger   *slog.Logger
	Config   ConfigService
	Backup   BackupService
	Gatherer prometheus.Gatherer
	// Ready runs the readiness checks (store, each enabled service).
	Ready func(ctx context.Context) []Check
	// Status describes the node for GET /api/v1/status.
	Status func(ctx context.Context) map[string]any
	// SIP returns the running SIP edge, or nil when it is off.
	SIP func() SIPService
	// Cluster lists the registrations every node of the cluster published
	// (GET /api/v1/registrations?scope=cluster). Nil: not offered.
	Cluster ClusterService
	// TURN returns the running TURN service, or nil when it is off.
	TURN func() TURNService
	// H323 returns the running H.323 edge, or nil when it is off.
	H323 func() H323Service
	// HA returns the node's VRRP speaker, or nil when ha is off.
	HA func() HAService
	// Certs holds named certificates.
	Certs CertService
	// Guard returns the node's guard (blocks; failed logins are reported
	// to it), or nil.
	Guard func() GuardService
	// Policy evaluates the call policy (dry run). Nil: not offered.
	Policy func() PolicyService
	// Ladder returns the signalling capture of recent calls, or nil.
	Ladder func() LadderService
	// Tunnel returns the running tunnel end, or nil when it is off.
	Tunnel func() TunnelService
	// Routes lists what the OS routes for each side of the node
	// (GET /api/v1/system/routes). Nil: not offered.
	Routes func(ctx context.Context) []InterfaceRoutes
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// OnLockout, when set, hears of each account locked after repeated
	// failed logins (the node records it and notifies SNMP receivers).
	OnLockout func(user, source string)
}

// Server is the API's HTTP handler.
type Server struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	limit *limiter
	mux   *http.ServeMux
}

// New builds the handler; it does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Store == nil || deps.Config == nil || deps.Ready == nil {
		return nil, errors.New("api: Store, Config and Ready are required")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.MaxLoginFailures <= 0 {
		cfg.MaxLoginFailures = 5
	}
	if cfg.Lockout <= 0 {
		cfg.Lockout = 15 * time.Minute
	}
	if cfg.LoginRatePerMinute <= 0 {
		cfg.LoginRatePerMinute = 20
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
	s := &Server{
		cfg: cfg, deps: deps, log: deps.Logger.With("component", "api"),
		limit: newLimiter(cfg.LoginRatePerMinute, cfg.MaxLoginFailures, cfg.Lockout),
		mux:   http.NewServeMux(),
	}
	s.routes()
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", promhttp.HandlerFor(s.deps.Gatherer, promhttp.HandlerOpts{}))
	m.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPIDoc)
	})
	m.HandleFunc("POST /api/v1/login", s.login)
	m.HandleFunc("POST /api/v1/logout", s.auth(false, s.logout))
	m.HandleFunc("GET /api/v1/me", s.auth(false, s.me))
	m.HandleFunc("GET /api/v1/status", s.auth(false, s.status))
	m.HandleFunc("GET /api/v1/system/routes", s.auth(false, s.systemRoutes))

	m.HandleFunc("GET /api/v1/config", s.auth(false, s.getConfig))
	m.HandleFunc("PUT /api/v1/config", s.auth(true, s.putConfig))
	m.HandleFunc("POST /api/v1/config/validate", s.auth(false, s.validateConfig))
	m.HandleFunc("GET /api/v1/config/versions", s.auth(false, s.configVersions))
	m.HandleFunc("GET /api/v1/config/versions/{version}", s.auth(false, s.configVersion))

	m.HandleFunc("GET /api/v1/users", s.auth(false, s.listUsers))
	m.HandleFunc("POST /api/v1/users", s.auth(true, s.createUser))
	m.HandleFunc("PATCH /api/v1/users/{name}", s.auth(true, s.updateUser))
	m.HandleFunc("DELETE /api/v1/users/{name}", s.auth(true, s.deleteUser))

	m.HandleFunc("GET /api/v1/tokens", s.auth(false, s.listTokens))
	m.HandleFunc("POST /api/v1/tokens", s.auth(true, s.createToken))
	m.HandleFunc("DELETE /api/v1/tokens/{id}", s.auth(true, s.deleteToken))

	m.HandleFunc("GET /api/v1/audit", s.auth(false, s.audit))
	m.HandleFunc("GET /api/v1/history/calls", s.auth(false, s.calls))
	m.HandleFunc("GET /api/v1/history/registrations", s.auth(false, s.registrations))
	m.HandleFunc("GET /api/v1/events", s.auth(false, s.events))

	m.HandleFunc("GET /api/v1/backup", s.auth(true, s.backup))
	m.HandleFunc("POST /api/v1/restore", s.auth(true, s.restore))

	s.serviceRoutes()
	s.sipRoutes()
	s.forgetRoutes()
	s.h323Routes()
	s.guardRoutes()
	s.h323LiveRoutes()
	s.policyRoutes()
	s.ladderRoutes()
	s.diagnosticsRoutes()
	s.tunnelRoutes()
	s.clusterRoutes()
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

// Handle adds a route for a service wired in later (e.g. live calls).
// admin marks routes that change state.
func (s *Server) Handle(pattern string, admin bool, h func(w http.ResponseWriter, r *http.Request, p Principal)) {
	s.mux.HandleFunc(pattern, s.auth(admin, h))
}

// Principal is the authenticated caller.
type Principal struct {
	User    string
	Role    store.Role
	TokenID string
	Kind    store.TokenKind
	Source  string
}

type authedHandler = func(w http.ResponseWriter, r *http.Request, p Principal)

// auth authenticates the request; admin requires the admin role. Requests
// authenticated by the session cookie that change state must carry the
// X-Requested-With header, which a cross-site form cannot set (CSRF guard).
func (s *Server) auth(admin bool, h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secret, kind := "", store.TokenAPI
		if a := r.Header.Get("Authorization"); a != "" {
			scheme, tok, ok := strings.Cut(a, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				writeError(w, http.StatusUnauthorized, "authorization must be a Bearer token")
				return
			}
			secret = strings.TrimSpace(tok)
		} else if c, err := r.Cookie(SessionCookie); err == nil {
			secret, kind = c.Value, store.TokenSession
		}
		if secret == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portico"`)
			writeError(w, http.StatusUnauthorized, "authentication required: log in or send a Bearer token")
			return
		}
		p, err := s.principal(r.Context(), secret, kind)
		if err != nil {
			if errors.Is(err, errUnauthenticated) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="portico", error="invalid_token"`)
				writeError(w, http.StatusUnauthorized, "invalid or expired credentials")
				return
			}
			s.log.Error("authenticate", "err", err)
			writeError(w, http.StatusServiceUnavailable, "store unavailable")
			return
		}
		p.Source = clientAddr(r).String()
		if kind == store.TokenSession && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get("X-Requested-With") == "" {
			writeError(w, http.StatusForbidden, "session requests that change state need the X-Requested-With header")
			return
		}
		if admin && p.Role != store.RoleAdmin {
			writeError(w, http.StatusForbidden, fmt.Sprintf("role %s may not do this; it needs admin", p.Role))
			return
		}
		h(w, r, p)
	}
}

var errUnauthenticated = errors.New("api: unauthenticated")

func (s *Server) principal(ctx context.Context, secret string, kind store.TokenKind) (Principal, error) {
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) > 128 {
		return Principal{}, errUnauthenticated
	}
	t, err := s.deps.Store.TokenByHash(ctx, hashSecret(secret))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, errUnauthenticated
	}
	if err != nil {
		return Principal{}, err
	}
	if t.Kind != kind || !constantTimeEqual(t.Hash, hashSecret(secret)) {
		return Principal{}, errUnauthenticated
	}
	if !t.ExpiresAt.IsZero() && !s.deps.Now().Before(t.ExpiresAt) {
		return Principal{}, errUnauthenticated
	}
	u, err := s.deps.Store.User(ctx, t.User)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, errUnauthenticated
	}
	if err != nil {
		return Principal{}, err
	}
	if u.Disabled {
		return Principal{}, errUnauthenticated
	}
	return Principal{User: u.Name, Role: u.Role, TokenID: t.ID, Kind: t.Kind}, nil
}

// dummyHash makes a login for an unknown user cost as much as a real one.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("portico-timing-equaliser"), bcrypt.DefaultCost)

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	now := s.deps.Now()
	src := clientAddr(r)
	if ok, wait := s.limit.allow(src, now); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeError(w, http.StatusTooManyRequests, "too many login attempts from this address; try again later")
		return
	}
	var req struct {
		Name     string `json:"name"`
		Username string `json:"username"` // the older spelling of name
		Password string `json:"password"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.Name != "" && req.Username != "" && req.Name != req.Username {
		writeError(w, http.StatusBadRequest, "give the account as name (username is its older spelling), not both")
		return
	}
	if req.Username == "" {
		req.Username = req.Name
	}
	if locked, until := s.limit.locked(req.Username, now); locked {
		w.Header().Set("Retry-After", strconv.Itoa(int(until.Sub(now).Seconds())+1))
		writeError(w, http.StatusLocked, "account temporarily locked after repeated failed logins")
		return
	}
	u, err := s.deps.Store.User(r.Context(), req.Username)
	hash := dummyHash
	if err == nil {
		hash = u.PasswordHash
	} else if !errors.Is(err, store.ErrNotFound) {
		s.log.Error("login: read user", "err", err)
		writeError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(req.Password)) != nil || err != nil || u.Disabled {
		locked := s.limit.fail(req.Username, now)
		s.loginFailed(src)
		if locked && s.deps.OnLockout != nil {
			s.deps.OnLockout(req.Username, src.String())
		}
		s.log.Warn("login failed", "user", req.Username, "source", src.String(), "locked", locked)
		s.auditWrite(r.Context(), Principal{User: req.Username, Source: src.String()}, "login.failed", req.Username, "")
		writeError(w, http.StatusUnauthorized, "invalid username or password")
		return
	}
	s.limit.succeed(req.Username)
	secret, h, id := newSecret()
	exp := now.Add(s.cfg.SessionTTL)
	if err := s.deps.Store.CreateToken(r.Context(), store.Token{ID: id, Hash: h, User: u.Name, Kind: store.TokenSession, Name: "login from " + src.String(), CreatedAt: now, ExpiresAt: exp}); err != nil {
		s.log.Error("login: create session", "err", err)
		writeError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", Expires: exp, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	s.auditWrite(r.Context(), Principal{User: u.Name, Source: src.String()}, "login", u.Name, "")
	writeJSON(w, http.StatusOK, map[string]any{"user": u.Name, "role": u.Role, "expires_at": exp.UTC()})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, p Principal) {
	if p.Kind == store.TokenSession {
		if err := s.deps.Store.DeleteToken(r.Context(), p.TokenID); err != nil && !errors.Is(err, store.ErrNotFound) {
			writeStoreError(w, s.log, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, p Principal) {
	writeJSON(w, http.StatusOK, map[string]any{"user": p.User, "role": p.Role, "auth": p.Kind})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := s.deps.Ready(ctx)
	ready := true
	for _, c := range checks {
		ready = ready && c.OK
	}
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ready": ready, "checks": checks})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, p Principal) {
	st := map[string]any{}
	if s.deps.Status != nil {
		st = s.deps.Status(r.Context())
	}
	st["ready"] = s.deps.Ready(r.Context())
	writeJSON(w, http.StatusOK, st)
}

// auditWrite records a change. A failure is logged, not returned: the change
// itself has already happened.
func (s *Server) auditWrite(ctx context.Context, p Principal, action, target, detail string) {
	err := s.deps.Store.AppendAudit(ctx, store.AuditEntry{Time: s.deps.Now().UTC(), User: p.User, Source: p.Source, Action: action, Target: target, Detail: detail})
	if err != nil {
		s.log.Error("audit write failed", "action", action, "err", err)
	}
}

func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a
	}
	return ap.Addr().Unmap()
}

// writeJSON writes v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError is every error body: a message, and field errors for a refused config.
type apiError struct {
	Error  string              `json:"error"`
	Fields []config.FieldError `json:"fields,omitempty"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

func writeStoreError(w http.ResponseWriter, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error()) // says what: `user "bob": store: not found`
	case errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, "already exists")
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusPreconditionFailed, "changed by someone else; fetch it again")
	default:
		log.Error("store", "err", err)
		writeError(w, http.StatusServiceUnavailable, "store unavailable")
	}
}

// readJSON decodes a JSON body strictly; on failure it writes 400. A body
// not labelled application/json is refused with 415: text/plain and form
// bodies are what a cross-site page can send without a CORS preflight.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "the body must be JSON sent as Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}
