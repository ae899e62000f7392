package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/store"
)

// minPassword is the shortest password accepted for an admin account.
const minPassword = 10

func etag(v int64) string { return `"` + strconv.FormatInt(v, 10) + `"` }

type configBody struct {
	Version   int64     `json:"version"`
	SHA256    string    `json:"sha256"`
	Author    string    `json:"author"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
	// Source is file (imported; File names it) or api or defaults.
	Source   string `json:"source"`
	File     string `json:"file,omitempty"`
	Document string `json:"document"`
}

// versionBody is a version as the API shows it: secrets masked (sha256 is
// still that of the stored document).
func versionBody(v store.ConfigVersion) configBody {
	o := config.OriginOf(v.Author)
	doc := ""
	if v.Document != nil {
		doc = string(MaskSecrets(v.Document))
	}
	return configBody{Version: v.Version, SHA256: v.SHA256, Author: v.Author, Comment: v.Comment, CreatedAt: v.CreatedAt.UTC(), Source: o.Source, File: o.File, Document: doc}
}

func wantsYAML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "yaml")
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request, p Principal) {
	v, err := s.deps.Config.Active(r.Context())
	if err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	w.Header().Set("ETag", etag(v.Version))
	if wantsYAML(r) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(MaskSecrets(v.Document))
		return
	}
	writeJSON(w, http.StatusOK, versionBody(v))
}

// putConfig replaces the configuration. The body is the YAML document (or a
// JSON object {"document": "...", "comment": "..."}); If-Match must carry the
// ETag of the version it was based on.
func (s *Server) putConfig(w http.ResponseWriter, r *http.Request, p Principal) {
	im := strings.TrimSpace(r.Header.Get("If-Match"))
	if im == "" {
		writeError(w, http.StatusPreconditionRequired, "If-Match with the current config ETag is required (GET /api/v1/config)")
		return
	}
	expect, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(im, "W/"), `"`), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "If-Match "+im+" is not a config ETag")
		return
	}
	doc, comment, ok := readDocument(w, r)
	if !ok {
		return
	}
	active, err := s.deps.Config.Active(r.Context())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		writeStoreError(w, s.log, err)
		return
	}
	doc, err = KeepSecrets(doc, active.Document)
	var v store.ConfigVersion
	var changed []string
	if err == nil {
		v, changed, err = s.deps.Config.Replace(r.Context(), doc, p.User, comment, expect)
	}
	if es, isCfg := config.AsErrors(err); isCfg {
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: "configuration refused; the running configuration is unchanged", Fields: es})
		return
	}
	if err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	s.auditWrite(r.Context(), p, "config.replace", "config", fmt.Sprintf("version %d; changed %s", v.Version, strings.Join(changed, ",")))
	w.Header().Set("ETag", etag(v.Version))
	writeJSON(w, http.StatusOK, map[string]any{"version": v.Version, "sha256": v.SHA256, "changed": nonNil(changed)})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func readDocument(w http.ResponseWriter, r *http.Request) ([]byte, string, bool) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var req struct {
			Document string `json:"document"`
			Comment  string `json:"comment"`
		}
		if !readJSON(w, r, &req) {
			return nil, "", false
		}
		return []byte(req.Document), req.Comment, true
	}
	doc, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "document too large")
		return nil, "", false
	}
	return doc, r.Header.Get("X-Portico-Comment"), true
}

func (s *Server) validateConfig(w http.ResponseWriter, r *http.Request, p Principal) {
	doc, _, ok := readDocument(w, r)
	if !ok {
		return
	}
	if err := s.deps.Config.Validate(r.Context(), doc); err != nil {
		es, ok := config.AsErrors(err)
		if !ok {
			writeStoreError(w, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"valid": false, "fields": es})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": true, "fields": []config.FieldError{}})
}

func (s *Server) configVersions(w http.ResponseWriter, r *http.Request, p Principal) {
	vs, err := s.deps.Store.ConfigVersions(r.Context(), queryLimit(r))
	if err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	out := make([]configBody, len(vs))
	for i, v := range vs {
		out[i] = versionBody(v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) configVersion(w http.ResponseWriter, r *http.Request, p Principal) {
	n, err := strconv.ParseInt(r.PathValue("version"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "version must be a number")
		return
	}
	v, err := s.deps.Store.ConfigVersion(r.Context(), n)
	if err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, versionBody(v))
}

type userBody struct {
	Name      string     `json:"name"`
	Role      store.Role `json:"role"`
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

func toUserBody(u store.User) userBody {
	return userBody{Name: u.Name, Role: u.Role, Disabled: u.Disabled, CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC()}
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p Principal) {
	us, err := s.deps.Store.Users(r.Context())
	if err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	out := make([]userBody, len(us))
	for i, u := range us {
		out[i] = toUserBody(u)
	}
	writeJSON(w, http.StatusOK, out)
}

// ValidateUserName reports why name cannot be a user name, or nil.
func ValidateUserName(name string) error {
	if len(name) < 1 || len(name) > 64 {
		return errors.New("name must be 1 to 64 characters")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@') {
			return fmt.Errorf("name may hold letters, digits and . _ - @ only, not %q", c)
		}
	}
	return nil
}

// ValidatePassword reports why pw is too weak, or nil.
func ValidatePassword(pw string) error {
	if len(pw) < minPassword {
		return fmt.Errorf("password must be at least %d characters", minPassword)
	}
	if len(pw) > 72 {
		return errors.New("password must be at most 72 bytes (bcrypt's limit)")
	}
	return nil
}

// ParseRole checks a role name.
func ParseRole(s string) (store.Role, error) {
	switch store.Role(s) {
	case store.RoleAdmin, store.RoleAuditor:
		return store.Role(s), nil
	}
	return "", fmt.Errorf("role %q is not admin or auditor", s)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p Principal) {
	var req struct {
		Name     string `json:"name"`
		Password string `json:"password"`
		Role     string `json:"role"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	role, err := ParseRole(req.Role)
	if err == nil {
		err = ValidateUserName(req.Name)
	}
	if err == nil {
		err = ValidatePassword(req.Password)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(req.Password), bcrypt.DefaultCost)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := s.deps.Now().UTC()
	u := store.User{Name: req.Name, PasswordHash: hash, Role: role, CreatedAt: now, UpdatedAt: now}
	if err := s.deps.Store.CreateUser(r.Context(), u); err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	s.auditWrite(r.Context(), p, "user.create", u.Name, "role "+string(role))
	writeJSON(w, http.StatusCreated, toUserBody(u))
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, p Principal) {
	var req struct {
		Password *string `json:"password"`
		Role     *string `json:"role"`
		Disabled *bool   `json:"disabled"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	u, err := s.deps.Store.User(r.Context(), r.PathValue("name"))
	if err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	var what []string
	if req.Password != nil {
		if err := ValidatePassword(*req.Password); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		u.PasswordHash, _ = bcrypt.GenerateFromPassword([]byte(*req.Password), bcrypt.DefaultCost)
		what = append(what, "password")
	}
	if req.Role != nil {
		role, err := ParseRole(*req.Role)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		u.Role = role
		what = append(what, "role "+*req.Role)
	}
	if req.Disabled != nil {
		u.Disabled = *req.Disabled
		what = append(what, fmt.Sprintf("disabled %v", *req.Disabled))
	}
	if u.Name == p.User && (u.Disabled || u.Role != store.RoleAdmin) {
		writeError(w, http.StatusConflict, "you cannot disable or demote your own account")
		return
	}
	u.UpdatedAt = s.deps.Now().UTC()
	if err := s.deps.Store.UpdateUser(r.Context(), u); err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	s.auditWrite(r.Context(), p, "user.update", u.Name, strings.Join(what, "; "))
	writeJSON(w, http.StatusOK, toUserBody(u))
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, p Principal) {
	name := r.PathValue("name")
	if name == p.User {
		writeError(w, http.StatusConflict, "you cannot delete your own account")
		return
	}
	if err := s.deps.Store.DeleteUser(r.Context(), name); err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	s.auditWrite(r.Context(), p, "user.delete", name, "")
	w.WriteHeader(http.StatusNoContent)
}

type tokenBody struct {
	ID        string          `json:"id"`
	User      string          `json:"user"`
	Kind      store.TokenKind `json:"kind"`
	Name      string          `json:"name"`
	CreatedAt time.Time       `json:"created_at"`
	ExpiresAt *time.Time      `json:"expires_at"`
	Secret    string          `json:"secret,omitempty"`
}

func toTokenBody(t store.Token) tokenBody {
	b := tokenBody{ID: t.ID, User: t.User, Kind: t.Kind, Name: t.Name, CreatedAt: t.CreatedAt.UTC()}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt.UTC()
		b.ExpiresAt = &e
	}
	return b
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p Principal) {
	user := p.User
	if p.Role == store.RoleAdmin && r.URL.Query().Get("user") != "" {
		user = r.URL.Query().Get("user")
	}
	ts, err := s.deps.Store.Tokens(r.Context(), user)
	if err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	out := []tokenBody{}
	for _, t := range ts {
		if t.Kind == store.TokenAPI {
			out = append(out, toTokenBody(t))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// createToken makes a bearer token for the caller; the secret is shown once.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p Principal) {
	var req struct {
		Name string `json:"name"`
		TTL  string `json:"ttl"` // Go duration; empty: never expires
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.Name == "" || len(req.Name) > 100 {
		writeError(w, http.StatusBadRequest, "name must be 1 to 100 characters")
		return
	}
	now := s.deps.Now().UTC()
	var exp time.Time
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "ttl must be a positive duration such as 720h")
			return
		}
		exp = now.Add(d)
	}
	secret, h, id := newSecret()
	t := store.Token{ID: id, Hash: h, User: p.User, Kind: store.TokenAPI, Name: req.Name, CreatedAt: now, ExpiresAt: exp}
	if err := s.deps.Store.CreateToken(r.Context(), t); err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	s.auditWrite(r.Context(), p, "token.create", id, req.Name)
	b := toTokenBody(t)
	b.Secret = secret
	writeJSON(w, http.StatusCreated, b)
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	ts, err := s.deps.Store.Tokens(r.Context(), p.User)
	if err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	owned := false
	for _, t := range ts {
		owned = owned || t.ID == id
	}
	if !owned && p.Role != store.RoleAdmin {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if err := s.deps.Store.DeleteToken(r.Context(), id); err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	s.auditWrite(r.Context(), p, "token.delete", id, "")
	w.WriteHeader(http.StatusNoContent)
}

// historyQuery reads since, until (RFC 3339), limit, offset and q.
func historyQuery(r *http.Request) (store.Query, error) {
	q := store.Query{Limit: queryLimit(r), Search: r.URL.Query().Get("q")}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if v := r.URL.Query().Get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return q, fmt.Errorf("%s must be an RFC 3339 time", f.name)
			}
			*f.dst = t
		}
	}
	if v := r.URL.Query().Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return q, errors.New("offset must be a non-negative number")
		}
		q.Offset = n
	}
	return q, nil
}

func queryLimit(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || n <= 0 {
		return 100
	}
	return min(n, 10000)
}

func listHandler[T any](s *Server, get func(*http.Request, store.Query) ([]T, error)) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		q, err := historyQuery(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		rows, err := get(r, q)
		if err != nil {
			writeStoreError(w, s.log, err)
			return
		}
		if rows == nil {
			rows = []T{}
		}
		writeJSON(w, http.StatusOK, rows)
	}
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, p Principal) {
	listHandler(s, func(r *http.Request, q store.Query) ([]store.AuditEntry, error) {
		return s.deps.Store.Audit(r.Context(), q)
	})(w, r, p)
}

func (s *Server) calls(w http.ResponseWriter, r *http.Request, p Principal) {
	listHandler(s, func(r *http.Request, q store.Query) ([]store.CallRecord, error) {
		return s.deps.Store.Calls(r.Context(), q)
	})(w, r, p)
}

func (s *Server) registrations(w http.ResponseWriter, r *http.Request, p Principal) {
	listHandler(s, func(r *http.Request, q store.Query) ([]store.RegistrationEvent, error) {
		return s.deps.Store.RegistrationEvents(r.Context(), q)
	})(w, r, p)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, p Principal) {
	listHandler(s, func(r *http.Request, q store.Query) ([]store.Event, error) {
		return s.deps.Store.Events(r.Context(), q)
	})(w, r, p)
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request, p Principal) {
	if s.deps.Backup == nil {
		writeError(w, http.StatusNotImplemented, "backup not available")
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="portico-%s.tar.gz"`, s.deps.Now().UTC().Format("20060102T150405Z")))
	if err := s.deps.Backup.Backup(r.Context(), w); err != nil {
		s.log.Error("backup", "err", err)
		return // headers are gone; the truncated archive fails its checksum
	}
	s.auditWrite(r.Context(), p, "backup", "", "")
}

// maxArchive caps an uploaded backup archive.
const maxArchive = 1 << 30

func (s *Server) restore(w http.ResponseWriter, r *http.Request, p Principal) {
	if s.deps.Backup == nil {
		writeError(w, http.StatusNotImplemented, "restore not available")
		return
	}
	err := s.deps.Backup.Restore(r.Context(), http.MaxBytesReader(w, r.Body, maxArchive))
	if err != nil {
		s.log.Warn("restore refused", "err", err)
		writeError(w, http.StatusUnprocessableEntity, "archive refused, nothing replaced: "+err.Error())
		return
	}
	s.auditWrite(r.Context(), p, "restore", "", "")
	writeJSON(w, http.StatusOK, map[string]any{"restored": true})
}
