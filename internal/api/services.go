package api

import (
	"context"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/certs"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/turn"
)

// TURNService is the running STUN/TURN service, when enabled.
type TURNService interface {
	Allocations() []turn.AllocationInfo
	MintCredentials(user string, ttl time.Duration) (username, password string, expires time.Time)
	Realm() string
}

// CertService holds named TLS certificates.
type CertService interface {
	List() []certs.Info
	Import(ctx context.Context, name string, data, keyPEM []byte, password string) (certs.Info, error)
	Delete(ctx context.Context, name string) error
	CreateCSR(ctx context.Context, name string, subject pkix.Name, sans []string) ([]byte, error)
}

func (s *Server) serviceRoutes() {
	m := s.mux
	m.HandleFunc("GET /api/v1/turn/allocations", s.auth(false, s.turnAllocations))
	m.HandleFunc("POST /api/v1/turn/credentials", s.auth(true, s.turnCredentials))
	m.HandleFunc("GET /api/v1/turn/users", s.auth(false, s.turnUsers))
	m.HandleFunc("POST /api/v1/turn/users", s.auth(true, s.putTURNUser))
	m.HandleFunc("DELETE /api/v1/turn/users/{name}", s.auth(true, s.deleteTURNUser))

	m.HandleFunc("GET /api/v1/certificates", s.auth(false, s.listCerts))
	m.HandleFunc("POST /api/v1/certificates", s.auth(true, s.importCert))
	m.HandleFunc("DELETE /api/v1/certificates/{name}", s.auth(true, s.deleteCert))
	m.HandleFunc("POST /api/v1/certificates/{name}/csr", s.auth(true, s.createCSR))
}

func (s *Server) turnService(w http.ResponseWriter) TURNService {
	if s.deps.TURN == nil {
		writeError(w, http.StatusNotFound, "the TURN service is not enabled (turn.enabled)")
		return nil
	}
	t := s.deps.TURN()
	if t == nil {
		writeError(w, http.StatusNotFound, "the TURN service is not enabled (turn.enabled)")
	}
	return t
}

func (s *Server) turnAllocations(w http.ResponseWriter, r *http.Request, p Principal) {
	t := s.turnService(w)
	if t == nil {
		return
	}
	a := t.Allocations()
	if a == nil {
		a = []turn.AllocationInfo{}
	}
	writeJSON(w, http.StatusOK, a)
}

// turnCredentials mints TURN REST API credentials for a web application.
// Only admins may: a credential is relay access for anyone who holds it,
// which is more than reading.
func (s *Server) turnCredentials(w http.ResponseWriter, r *http.Request, p Principal) {
	t := s.turnService(w)
	if t == nil {
		return
	}
	var req struct {
		User string `json:"user"`
		TTL  string `json:"ttl"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	ttl := time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "ttl must be a positive duration such as 1h")
			return
		}
		ttl = d
	}
	if req.User == "" || strings.ContainsAny(req.User, ":\x00") || len(req.User) > 128 {
		writeError(w, http.StatusBadRequest, "user must be 1 to 128 characters without ':'")
		return
	}
	u, pw, exp := t.MintCredentials(req.User, ttl)
	if u == "" {
		writeError(w, http.StatusConflict, "REST credentials are off: set turn.rest_secret or PORTICO_TURN_SECRET")
		return
	}
	s.auditWrite(r.Context(), p, "turn.credentials", req.User, "ttl "+ttl.String())
	writeJSON(w, http.StatusOK, map[string]any{"username": u, "password": pw, "expires_at": exp.UTC(), "realm": t.Realm()})
}

func (s *Server) turnUsers(w http.ResponseWriter, r *http.Request, p Principal) {
	us, err := s.deps.Store.TURNUsers(r.Context())
	if err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	out := []map[string]any{}
	for _, u := range us {
		out = append(out, map[string]any{"realm": u.Realm, "name": u.Name, "created_at": u.CreatedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
}

// turnRealm is the realm long-term users go in when none is given: the
// running TURN service's, else turn.realm of the active configuration (the
// service, once enabled, looks users up there).
func (s *Server) turnRealm(ctx context.Context) (string, error) {
	if s.deps.TURN != nil {
		if t := s.deps.TURN(); t != nil {
			return t.Realm(), nil
		}
	}
	return RealmOf(s.deps.Config.Active(ctx))
}

// RealmOf is turn.realm of the active configuration v (as read, with its
// error): the default realm when no version is stored yet. The API and the
// CLI put long-term TURN users there.
func RealmOf(v store.ConfigVersion, err error) (string, error) {
	if errors.Is(err, store.ErrNotFound) {
		return turn.DefaultRealm, nil
	}
	if err != nil {
		return "", err
	}
	cfg, err := config.Parse(v.Document)
	if err != nil {
		return "", fmt.Errorf("read turn.realm from the active configuration (version %d): %w; give the realm", v.Version, err)
	}
	return cfg.TURN.Realm, nil
}

// realmOr is realm, or turnRealm when it is empty; on failure it writes
// the error and returns false.
func (s *Server) realmOr(w http.ResponseWriter, r *http.Request, realm string) (string, bool) {
	if realm != "" {
		return realm, true
	}
	realm, err := s.turnRealm(r.Context())
	if errors.Is(err, store.ErrUnavailable) {
		writeStoreError(w, s.log, err)
		return "", false
	}
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return "", false
	}
	return realm, true
}

// ValidateTURNPassword reports why pw cannot be a long-term TURN password,
// or nil: the rule of the API and the CLI alike.
func ValidateTURNPassword(pw string) error {
	if len(pw) < 8 {
		return errors.New("password must be at least 8 characters")
	}
	return nil
}

func (s *Server) putTURNUser(w http.ResponseWriter, r *http.Request, p Principal) {
	var req struct {
		Name     string `json:"name"`
		Password string `json:"password"`
		Realm    string `json:"realm"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if err := ValidateUserName(req.Name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := ValidateTURNPassword(req.Password); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var ok bool
	if req.Realm, ok = s.realmOr(w, r, req.Realm); !ok {
		return
	}
	u := store.TURNUser{Realm: req.Realm, Name: req.Name, Key: turn.LongTermKey(req.Name, req.Realm, req.Password), CreatedAt: s.deps.Now().UTC()}
	if err := s.deps.Store.PutTURNUser(r.Context(), u); err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	s.auditWrite(r.Context(), p, "turn.user.put", req.Name, "realm "+req.Realm)
	writeJSON(w, http.StatusCreated, map[string]any{"realm": u.Realm, "name": u.Name, "created_at": u.CreatedAt})
}

func (s *Server) deleteTURNUser(w http.ResponseWriter, r *http.Request, p Principal) {
	realm, ok := s.realmOr(w, r, r.URL.Query().Get("realm"))
	if !ok {
		return
	}
	if err := s.deps.Store.DeleteTURNUser(r.Context(), realm, r.PathValue("name")); err != nil {
		writeStoreError(w, s.log, err)
		return
	}
	s.auditWrite(r.Context(), p, "turn.user.delete", r.PathValue("name"), "realm "+realm)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) certService(w http.ResponseWriter) CertService {
	if s.deps.Certs == nil {
		writeError(w, http.StatusNotImplemented, "certificates not available")
	}
	return s.deps.Certs
}

func (s *Server) listCerts(w http.ResponseWriter, r *http.Request, p Principal) {
	c := s.certService(w)
	if c == nil {
		return
	}
	l := c.List()
	if l == nil {
		l = []certs.Info{}
	}
	writeJSON(w, http.StatusOK, l)
}

// importCert takes a PEM chain (with or without its key) or a PKCS#12 file,
// either as a JSON object or as the raw file with ?name=…&password=….
// The name is a label: any printable text, never used as a file path.
func (s *Server) importCert(w http.ResponseWriter, r *http.Request, p Principal) {
	c := s.certService(w)
	if c == nil {
		return
	}
	var name, password string
	var data, key []byte
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var req struct {
			Name     string `json:"name"`
			PEM      string `json:"pem"`
			KeyPEM   string `json:"key_pem"`
			PKCS12   string `json:"pkcs12_base64"`
			Password string `json:"password"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		name, password, data, key = req.Name, req.Password, []byte(req.PEM), []byte(req.KeyPEM)
		if req.PKCS12 != "" {
			b, err := base64.StdEncoding.DecodeString(req.PKCS12)
			if err != nil {
				writeError(w, http.StatusBadRequest, "pkcs12_base64 is not base64")
				return
			}
			data = b
		}
	} else {
		name, password = r.URL.Query().Get("name"), r.URL.Query().Get("password")
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, certs.MaxUploadSize))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "certificate upload too large")
			return
		}
		data = b
	}
	if err := certs.ValidateName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	info, err := c.Import(r.Context(), name, data, key, password)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			writeStoreError(w, s.log, err)
			return
		}
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	s.auditWrite(r.Context(), p, "certificate.import", name, info.SHA256)
	writeJSON(w, http.StatusCreated, info)
}

func (s *Server) deleteCert(w http.ResponseWriter, r *http.Request, p Principal) {
	c := s.certService(w)
	if c == nil {
		return
	}
	name := r.PathValue("name")
	if err := c.Delete(r.Context(), name); err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	s.auditWrite(r.Context(), p, "certificate.delete", name, "")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) createCSR(w http.ResponseWriter, r *http.Request, p Principal) {
	c := s.certService(w)
	if c == nil {
		return
	}
	var req struct {
		CommonName   string   `json:"common_name"`
		Organization string   `json:"organization"`
		Country      string   `json:"country"`
		SANs         []string `json:"sans"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.CommonName == "" {
		writeError(w, http.StatusBadRequest, "common_name is required")
		return
	}
	subj := pkix.Name{CommonName: req.CommonName}
	if req.Organization != "" {
		subj.Organization = []string{req.Organization}
	}
	if req.Country != "" {
		subj.Country = []string{req.Country}
	}
	name := r.PathValue("name")
	csr, err := c.CreateCSR(r.Context(), name, subj, req.SANs)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	s.auditWrite(r.Context(), p, "certificate.csr", name, req.CommonName)
	writeJSON(w, http.StatusOK, map[string]string{"name": name, "csr_pem": string(csr)})
}
