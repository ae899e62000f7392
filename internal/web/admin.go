package web

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

func (s *Server) adminRoutes() {
	m := s.mux
	m.Handle("GET /certificates", s.page(s.certsPage))
	m.Handle("POST /certificates", s.page(s.certUpload))
	m.Handle("POST /certificates/{name}/delete", s.page(s.certDelete))
	m.Handle("POST /certificates/csr", s.page(s.certCSR))
	m.Handle("GET /users", s.page(s.usersPage))
	m.Handle("POST /users", s.page(s.userCreate))
	m.Handle("POST /users/{name}", s.page(s.userUpdate))
	m.Handle("POST /users/{name}/delete", s.page(s.userDelete))
	m.Handle("POST /tokens", s.page(s.tokenCreate))
	m.Handle("POST /tokens/{id}/delete", s.page(s.tokenDelete))
	m.Handle("GET /maintenance", s.page(s.maintenancePage))
	m.Handle("POST /maintenance/restore", s.page(s.restore))
	m.Handle("POST /maintenance/turn-users", s.page(s.turnUserPut))
	m.Handle("POST /maintenance/turn-users/{name}/delete", s.page(s.turnUserDelete))
}

// certUsers maps certificate names to the configuration fields that name
// them, read from the active document (every key named "certificate").
func certUsers(doc string) map[string][]string {
	var root yaml.Node
	out := map[string][]string{}
	if yaml.Unmarshal([]byte(doc), &root) != nil {
		return out
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i].Value, n.Content[i+1]
				p := k
				if path != "" {
					p = path + "." + k
				}
				if k == "certificate" && v.Kind == yaml.ScalarNode && v.Value != "" {
					out[v.Value] = append(out[v.Value], p)
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(&root, "")
	return out
}

type certsView struct {
	Certs []certInfo
	CSR   string
	Error string
}

func (s *Server) certsPage(w http.ResponseWriter, r *http.Request, u user) {
	s.renderCerts(w, r, u, http.StatusOK, certsView{}, flashOf(r))
}

func (s *Server) renderCerts(w http.ResponseWriter, r *http.Request, u user, code int, v certsView, f *flash) {
	cs, err := s.certificates(r)
	if err != nil && f == nil {
		f = &flash{Text: err.Error()}
	}
	var active configVersion
	s.getJSON(r, "/api/v1/config", &active)
	users := certUsers(active.Document)
	for i := range cs {
		cs[i].UsedBy = users[cs[i].Name]
		if cs[i].Default {
			cs[i].UsedBy = append(cs[i].UsedBy, "default: the management listener and every TLS listener that names none")
		}
	}
	v.Certs = cs
	s.render(w, code, "certificates", view{Title: "Certificates", Nav: "certificates", User: u, Flash: f, Data: v})
}

// formFile reads an uploaded file of the multipart form (parsed by the
// CSRF check), or nil.
func formFile(r *http.Request, name string, limit int64) ([]byte, error) {
	f, _, err := r.FormFile(name)
	if err == http.ErrMissingFile {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("file larger than %d bytes", limit)
	}
	return b, err
}

// certUpload imports a PEM chain (with or without its key) or a PKCS#12
// file through POST /api/v1/certificates.
func (s *Server) certUpload(w http.ResponseWriter, r *http.Request, u user) {
	data, err := formFile(r, "file", 1<<20)
	if err == nil && data == nil {
		data = []byte(r.PostFormValue("pem"))
	}
	key, kerr := formFile(r, "key", 1<<20)
	if err == nil {
		err = kerr
	}
	if err != nil {
		s.renderCerts(w, r, u, http.StatusBadRequest, certsView{}, &flash{Text: "upload: " + err.Error()})
		return
	}
	req := map[string]string{"name": r.PostFormValue("name"), "password": r.PostFormValue("password"), "key_pem": string(key)}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		req["pem"] = string(data)
	} else {
		req["pkcs12_base64"] = base64.StdEncoding.EncodeToString(data)
	}
	res := s.call(r, http.MethodPost, "/api/v1/certificates", req, "")
	s.done(w, r, u, "certificates", "/certificates", res, "certificate "+req["name"]+" stored")
}

func (s *Server) certDelete(w http.ResponseWriter, r *http.Request, u user) {
	name := r.PathValue("name")
	res := s.call(r, http.MethodDelete, "/api/v1/certificates/"+url.PathEscape(name), nil, "")
	s.done(w, r, u, "certificates", "/certificates", res, "certificate "+name+" deleted")
}

// certCSR creates a key and a signing request (the key stays on the node).
func (s *Server) certCSR(w http.ResponseWriter, r *http.Request, u user) {
	var sans []string
	for _, p := range strings.FieldsFunc(r.PostFormValue("sans"), func(c rune) bool { return c == ',' || c == ' ' || c == '\n' }) {
		sans = append(sans, strings.TrimSpace(p))
	}
	name := r.PostFormValue("name")
	res := s.call(r, http.MethodPost, "/api/v1/certificates/"+url.PathEscape(name)+"/csr", map[string]any{
		"common_name": r.PostFormValue("common_name"), "organization": r.PostFormValue("organization"),
		"country": r.PostFormValue("country"), "sans": sans}, "")
	var out struct {
		CSR string `json:"csr_pem"`
	}
	if err := res.decode(&out); err != nil {
		s.refused(w, u, "certificates", "/certificates", res)
		return
	}
	s.renderCerts(w, r, u, http.StatusOK, certsView{CSR: out.CSR}, &flash{OK: true, Text: "signing request created for " + name + "; have it signed and upload the certificate under the same name"})
}

type userRow struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

type tokenRow struct {
	ID        string     `json:"id"`
	User      string     `json:"user"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	Secret    string     `json:"secret"`
}

type usersView struct {
	Users     []userRow
	Tokens    []tokenRow
	TokenUser string
	NewSecret *tokenRow
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, u user) {
	s.renderUsers(w, r, u, http.StatusOK, usersView{}, flashOf(r))
}

func (s *Server) renderUsers(w http.ResponseWriter, r *http.Request, u user, code int, v usersView, f *flash) {
	var errs []string
	if err := s.getJSON(r, "/api/v1/users", &v.Users); err != nil {
		errs = append(errs, "users: "+err.Error())
	}
	v.TokenUser = u.Name
	if tu := r.URL.Query().Get("tokens"); tu != "" && u.Admin {
		v.TokenUser = tu
	}
	if err := s.getJSON(r, "/api/v1/tokens?user="+url.QueryEscape(v.TokenUser), &v.Tokens); err != nil {
		errs = append(errs, "tokens: "+err.Error())
	}
	if f == nil && len(errs) > 0 {
		f = &flash{Text: strings.Join(errs, "; ")}
	}
	sort.Slice(v.Users, func(i, j int) bool { return v.Users[i].Name < v.Users[j].Name })
	s.render(w, code, "users", view{Title: "Users and API tokens", Nav: "users", User: u, Flash: f, Data: v})
}

func (s *Server) userCreate(w http.ResponseWriter, r *http.Request, u user) {
	name := r.PostFormValue("name")
	res := s.call(r, http.MethodPost, "/api/v1/users", map[string]string{"name": name, "password": r.PostFormValue("password"), "role": r.PostFormValue("role")}, "")
	s.done(w, r, u, "users", "/users", res, "user "+name+" created")
}

// userUpdate changes a role, enables or disables, or resets a password:
// only the fields the form filled in are sent.
func (s *Server) userUpdate(w http.ResponseWriter, r *http.Request, u user) {
	name := r.PathValue("name")
	req := map[string]any{}
	if v := r.PostFormValue("role"); v != "" {
		req["role"] = v
	}
	switch r.PostFormValue("disabled") {
	case "true":
		req["disabled"] = true
	case "false":
		req["disabled"] = false
	}
	if v := r.PostFormValue("password"); v != "" {
		req["password"] = v
	}
	res := s.call(r, http.MethodPatch, "/api/v1/users/"+url.PathEscape(name), req, "")
	s.done(w, r, u, "users", "/users", res, "user "+name+" updated")
}

func (s *Server) userDelete(w http.ResponseWriter, r *http.Request, u user) {
	name := r.PathValue("name")
	res := s.call(r, http.MethodDelete, "/api/v1/users/"+url.PathEscape(name), nil, "")
	s.done(w, r, u, "users", "/users", res, "user "+name+" deleted")
}

// tokenCreate makes an API token for the signed-in user and shows its
// secret once, on this response only.
func (s *Server) tokenCreate(w http.ResponseWriter, r *http.Request, u user) {
	req := map[string]string{"name": r.PostFormValue("name")}
	if ttl := r.PostFormValue("ttl"); ttl != "" {
		req["ttl"] = ttl
	}
	res := s.call(r, http.MethodPost, "/api/v1/tokens", req, "")
	var t tokenRow
	if err := res.decode(&t); err != nil {
		s.refused(w, u, "users", "/users", res)
		return
	}
	s.renderUsers(w, r, u, http.StatusCreated, usersView{NewSecret: &t}, &flash{OK: true, Text: "token " + t.Name + " created; copy its secret now, it is not shown again"})
}

func (s *Server) tokenDelete(w http.ResponseWriter, r *http.Request, u user) {
	id := r.PathValue("id")
	res := s.call(r, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(id), nil, "")
	s.done(w, r, u, "users", "/users", res, "token "+id+" revoked")
}

type turnUser struct {
	Realm     string    `json:"realm"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) maintenancePage(w http.ResponseWriter, r *http.Request, u user) {
	var tu []turnUser
	f := flashOf(r)
	if err := s.getJSON(r, "/api/v1/turn/users", &tu); err != nil && f == nil {
		f = &flash{Text: "TURN users: " + err.Error()}
	}
	s.render(w, http.StatusOK, "maintenance", view{Title: "Maintenance", Nav: "maintenance", User: u, Flash: f, Data: tu})
}

// restoreMax caps an uploaded backup archive (the API's own limit).
const restoreMax = 1 << 30

// restore passes an uploaded archive to POST /api/v1/restore, which
// checks the whole archive before it replaces anything.
func (s *Server) restore(w http.ResponseWriter, r *http.Request, u user) {
	f, _, err := r.FormFile("archive")
	if err != nil {
		s.refused(w, u, "maintenance", "/maintenance", result{code: http.StatusBadRequest, body: []byte(`{"error":"choose a backup archive to upload"}`)})
		return
	}
	defer f.Close()
	res := s.call(r, http.MethodPost, "/api/v1/restore", io.LimitReader(f, restoreMax), "application/gzip")
	s.done(w, r, u, "maintenance", "/maintenance", res, "backup restored")
}

func (s *Server) turnUserPut(w http.ResponseWriter, r *http.Request, u user) {
	name := r.PostFormValue("name")
	res := s.call(r, http.MethodPost, "/api/v1/turn/users", map[string]string{"name": name, "password": r.PostFormValue("password"), "realm": r.PostFormValue("realm")}, "")
	s.done(w, r, u, "maintenance", "/maintenance", res, "TURN user "+name+" saved")
}

func (s *Server) turnUserDelete(w http.ResponseWriter, r *http.Request, u user) {
	name := r.PathValue("name")
	res := s.call(r, http.MethodDelete, "/api/v1/turn/users/"+url.PathEscape(name)+"?realm="+url.QueryEscape(r.PostFormValue("realm")), nil, "")
	s.done(w, r, u, "maintenance", "/maintenance", res, "TURN user "+name+" deleted")
}
