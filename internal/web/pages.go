package web

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"dur": func(ms int64) string {
		return (time.Duration(ms) * time.Millisecond).Round(time.Second).String()
	},
	"since": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return time.Since(t).Round(time.Second).String()
	},
	"join": strings.Join,
	"add":  func(a, b int) int { return a + b },
	"sub":  func(a, b int) int { return a - b },
}

// parsePages parses each page template together with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		out[base] = t
	}
	return out, nil
}

type loginData struct {
	CSRF string
	Next string
	Name string
}

// safeNext keeps a post-sign-in redirect on this console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, "", nil)
}

// renderLogin shows the sign-in form with a fresh pre-session CSRF secret.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, code int, name string, f *flash) {
	b := make([]byte, 24)
	rand.Read(b)
	secret := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: secret, Path: "/login", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	next := safeNext(r.URL.Query().Get("next"))
	if r.Method == http.MethodPost {
		next = safeNext(r.PostFormValue("next"))
	}
	s.render(w, code, "login", view{Title: "Sign in", Flash: f, Data: loginData{CSRF: s.csrfToken(secret), Next: next, Name: name}})
}

// loginSubmit signs in through POST /api/v1/login, which applies the
// accounts, rate limit and lockout, and passes its session cookie on.
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(preCookie)
	if err != nil || !s.csrfOK(r, c.Value) {
		s.renderLogin(w, r, http.StatusForbidden, "", &flash{Text: "the sign-in form expired; try again"})
		return
	}
	name := r.PostFormValue("username")
	res := s.call(r, http.MethodPost, "/api/v1/login", map[string]string{"username": name, "password": r.PostFormValue("password")}, "")
	if !res.ok() {
		s.renderLogin(w, r, res.code, name, &flash{Text: res.message()})
		return
	}
	for _, sc := range res.header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", sc)
	}
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: "", Path: "/login", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, u user) {
	res := s.call(r, http.MethodPost, "/api/v1/logout", nil, "")
	for _, sc := range res.header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", sc)
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// refused shows an API refusal with the API's status code (403 for an
// auditor's change), so the server's answer is the refusal itself.
func (s *Server) refused(w http.ResponseWriter, u user, nav, back string, res result) {
	s.render(w, failCode(res), "refused", view{Title: "Refused", Nav: nav, User: u, Flash: outcome(res, ""), Data: back})
}

// done sends the browser back after a change: a redirect with the outcome
// when the API accepted it, else the refusal page.
func (s *Server) done(w http.ResponseWriter, r *http.Request, u user, nav, back string, res result, ok string) {
	if !res.ok() {
		s.refused(w, u, nav, back, res)
		return
	}
	redirectFlash(w, r, back, &flash{OK: true, Text: ok})
}
