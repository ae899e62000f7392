package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/store"
)

type configVersion struct {
	Version   int64     `json:"version"`
	SHA256    string    `json:"sha256"`
	Author    string    `json:"author"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
	Source    string    `json:"source"`
	File      string    `json:"file"`
	Document  string    `json:"document"`
}

// docLine is one line of the document as the editor's check shows it, with
// the field errors that point at it.
type docLine struct {
	N      int
	Text   string
	Errors []field.Error
}

type configView struct {
	Active         configVersion
	Document       string // what the editor holds
	Comment        string
	Versions       []configVersion
	PendingRestart []string
	Checked        bool // the editor's document was validated
	Valid          bool
	Errors         []field.Error
	Unplaced       []field.Error // errors without a line
	Lines          []docLine
	Changed        []string
}

func (s *Server) configRoutes() {
	s.mux.Handle("GET /config", s.page(func(w http.ResponseWriter, r *http.Request, u user) {
		v, f := s.configView(r)
		v.Document = v.Active.Document
		if f == nil {
			f = flashOf(r)
		}
		s.render(w, http.StatusOK, "config", view{Title: "Configuration", Nav: "config", User: u, Flash: f, Data: v})
	}))
	s.mux.Handle("POST /config/validate", s.page(s.configValidate))
	s.mux.Handle("POST /config", s.page(s.configSave))
	s.mux.Handle("POST /config/rollback", s.page(s.configRollback))
	s.mux.Handle("GET /config/versions/{version}", s.page(s.configShowVersion))
	s.mux.Handle("GET /config/diff", s.page(s.configDiff))
	s.mux.Handle("GET /audit", s.page(s.audit))
}

// configView reads the active version, its recent history and what waits
// for a restart.
func (s *Server) configView(r *http.Request) (configView, *flash) {
	var v configView
	var errs []string
	if err := s.getJSON(r, "/api/v1/config", &v.Active); err != nil {
		errs = append(errs, "active configuration: "+err.Error())
	}
	if err := s.getJSON(r, "/api/v1/config/versions?limit=50", &v.Versions); err != nil {
		errs = append(errs, "versions: "+err.Error())
	}
	var st struct {
		PendingRestart []string `json:"pending_restart"`
	}
	if err := s.getJSON(r, "/api/v1/status", &st); err != nil {
		errs = append(errs, "status: "+err.Error())
	}
	v.PendingRestart = st.PendingRestart
	if len(errs) > 0 {
		return v, &flash{Text: strings.Join(errs, "; ")}
	}
	return v, nil
}

// placeErrors attaches each field error to the line of the document it
// names (the API locates them); errors without a line are listed apart.
func placeErrors(v *configView, doc string) {
	lines := strings.Split(doc, "\n")
	v.Lines = make([]docLine, len(lines))
	for i, l := range lines {
		v.Lines[i] = docLine{N: i + 1, Text: l}
	}
	for _, e := range v.Errors {
		if e.Line >= 1 && e.Line <= len(lines) {
			v.Lines[e.Line-1].Errors = append(v.Lines[e.Line-1].Errors, e)
		} else {
			v.Unplaced = append(v.Unplaced, e)
		}
	}
}

// formDocument is the editor's document with the CRLF line ends a browser
// submits a textarea with turned back into the LF the document was shown with.
func formDocument(r *http.Request) string {
	return strings.ReplaceAll(r.PostFormValue("document"), "\r\n", "\n")
}

// configValidate checks the editor's document (POST /api/v1/config/validate)
// and shows each field error at its line.
func (s *Server) configValidate(w http.ResponseWriter, r *http.Request, u user) {
	v, f := s.configView(r)
	v.Document, v.Comment = formDocument(r), r.PostFormValue("comment")
	res := s.call(r, http.MethodPost, "/api/v1/config/validate", map[string]string{"document": v.Document}, "")
	var out struct {
		Valid  bool          `json:"valid"`
		Fields []field.Error `json:"fields"`
	}
	if err := res.decode(&out); err != nil {
		s.refused(w, u, "config", "/config", res)
		return
	}
	v.Checked, v.Valid, v.Errors = true, out.Valid, out.Fields
	placeErrors(&v, v.Document)
	if f == nil {
		if out.Valid {
			f = &flash{OK: true, Text: "the document is valid; nothing was saved yet"}
		} else {
			f = &flash{Text: "the document has errors; nothing was saved"}
		}
	}
	code := http.StatusOK
	if !out.Valid {
		code = http.StatusUnprocessableEntity
	}
	s.render(w, code, "config", view{Title: "Configuration", Nav: "config", User: u, Flash: f, Data: v})
}

// configSave stores and applies the editor's document (PUT /api/v1/config,
// based on the version the editor was opened on).
func (s *Server) configSave(w http.ResponseWriter, r *http.Request, u user) {
	doc, comment := formDocument(r), r.PostFormValue("comment")
	expect := r.PostFormValue("expect")
	res := s.call(r, http.MethodPut, "/api/v1/config", map[string]string{"document": doc, "comment": comment}, "", "If-Match", `"`+expect+`"`)
	if res.ok() {
		var out struct {
			Version int64    `json:"version"`
			Changed []string `json:"changed"`
		}
		res.decode(&out)
		msg := "saved and applied as version " + strconv.FormatInt(out.Version, 10)
		if len(out.Changed) > 0 {
			msg += "; changed " + strings.Join(out.Changed, ", ")
		}
		redirectFlash(w, r, "/config", &flash{OK: true, Text: msg})
		return
	}
	var body struct {
		Error  string        `json:"error"`
		Fields []field.Error `json:"fields"`
	}
	json.Unmarshal(res.body, &body)
	if res.code != http.StatusUnprocessableEntity {
		s.refused(w, u, "config", "/config", res)
		return
	}
	v, _ := s.configView(r)
	v.Document, v.Comment = doc, comment
	v.Checked, v.Errors = true, body.Fields
	placeErrors(&v, doc)
	s.render(w, res.code, "config", view{Title: "Configuration", Nav: "config", User: u, Flash: outcome(res, ""), Data: v})
}

// configRollback makes an earlier version the active one again: its
// document is stored as a new version, validated and applied like any change.
func (s *Server) configRollback(w http.ResponseWriter, r *http.Request, u user) {
	n := r.PostFormValue("version")
	var old configVersion
	res := s.call(r, http.MethodGet, "/api/v1/config/versions/"+url.PathEscape(n), nil, "")
	if err := res.decode(&old); err != nil {
		s.refused(w, u, "config", "/config", res)
		return
	}
	var active configVersion
	if err := s.getJSON(r, "/api/v1/config", &active); err != nil {
		s.refused(w, u, "config", "/config", result{code: http.StatusServiceUnavailable})
		return
	}
	res = s.call(r, http.MethodPut, "/api/v1/config", map[string]string{"document": old.Document, "comment": "rollback to version " + n},
		"", "If-Match", `"`+strconv.FormatInt(active.Version, 10)+`"`)
	s.done(w, r, u, "config", "/config", res, "rolled back to version "+n)
}

func (s *Server) configShowVersion(w http.ResponseWriter, r *http.Request, u user) {
	var v configVersion
	res := s.call(r, http.MethodGet, "/api/v1/config/versions/"+url.PathEscape(r.PathValue("version")), nil, "")
	if err := res.decode(&v); err != nil {
		s.refused(w, u, "config", "/config", res)
		return
	}
	s.render(w, http.StatusOK, "config_version", view{Title: "Configuration version " + strconv.FormatInt(v.Version, 10), Nav: "config", User: u, Data: v})
}

func (s *Server) configDiff(w http.ResponseWriter, r *http.Request, u user) {
	a, b := r.URL.Query().Get("a"), r.URL.Query().Get("b")
	var va, vb configVersion
	for _, p := range []struct {
		n string
		v *configVersion
	}{{a, &va}, {b, &vb}} {
		res := s.call(r, http.MethodGet, "/api/v1/config/versions/"+url.PathEscape(p.n), nil, "")
		if err := res.decode(p.v); err != nil {
			s.refused(w, u, "config", "/config", res)
			return
		}
	}
	d := struct {
		A, B  configVersion
		Lines []diffLine
	}{va, vb, diffLines(va.Document, vb.Document)}
	s.render(w, http.StatusOK, "config_diff", view{Title: "Configuration: version " + a + " → " + b, Nav: "config", User: u, Data: d})
}

// audit lists the audit log, newest first, paged by the API.
func (s *Server) audit(w http.ResponseWriter, r *http.Request, u user) {
	f := readFilter(r)
	q := f.apiQuery()
	vals, _ := url.ParseQuery(q)
	vals.Set("limit", strconv.Itoa(pageSize+1))
	vals.Set("offset", strconv.Itoa((f.Page-1)*pageSize))
	var rows []store.AuditEntry
	var fl *flash
	if f.Error != "" {
		fl = &flash{Text: f.Error}
	} else if err := s.getJSON(r, "/api/v1/audit?"+vals.Encode(), &rows); err != nil {
		fl = &flash{Text: err.Error()}
	}
	d := struct {
		Filter     historyFilter
		Rows       []store.AuditEntry
		Prev, Next string
	}{Filter: f}
	if len(rows) > pageSize {
		rows, d.Next = rows[:pageSize], f.link(f.Page+1, "")
	}
	if f.Page > 1 {
		d.Prev = f.link(f.Page-1, "")
	}
	d.Rows = rows
	s.render(w, http.StatusOK, "audit", view{Title: "Audit log", Nav: "audit", User: u, Flash: fl, Data: d})
}
