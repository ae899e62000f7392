package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/turn"
)

// call sends one request as the holder of a bearer token.
func call(s *Server, token, method, path, ctype, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.50:1000"
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// tokenFor makes a user with role and returns a bearer token of theirs.
func tokenFor(t *testing.T, st store.Store, name string, role store.Role) string {
	t.Helper()
	ctx := context.Background()
	hash, _ := bcrypt.GenerateFromPassword([]byte(name+"-password"), bcrypt.MinCost)
	if err := st.CreateUser(ctx, store.User{Name: name, PasswordHash: hash, Role: role}); err != nil && role != store.RoleAdmin {
		t.Fatal(err)
	}
	secret, h, id := newSecret()
	if err := st.CreateToken(ctx, store.Token{ID: id, Hash: h, User: name, Kind: store.TokenAPI, Name: "test"}); err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestJSONBodiesNeedJSONContentType: a login sent as text/plain (what a
// cross-site form can send without a preflight) is refused with 415, not
// taken as JSON.
func TestJSONBodiesNeedJSONContentType(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	body := `{"username":"admin","password":"admin-password"}`
	for _, tc := range []struct {
		name  string
		ctype string
		want  int
	}{
		{"text/plain", "text/plain", http.StatusUnsupportedMediaType},
		{"form", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"none", "", http.StatusUnsupportedMediaType},
		{"json", "application/json", http.StatusOK},
		{"json with charset", "application/json; charset=utf-8", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := call(s, "", "POST", "/api/v1/login", tc.ctype, body); w.Code != tc.want {
				t.Fatalf("login as %q: %d, want %d: %s", tc.ctype, w.Code, tc.want, w.Body)
			}
		})
	}
}

type fakeTURN struct{}

func (fakeTURN) Allocations() []turn.AllocationInfo { return nil }
func (fakeTURN) MintCredentials(user string, ttl time.Duration) (string, string, time.Time) {
	return "1:" + user, "pw", time.Now().Add(ttl)
}
func (fakeTURN) Realm() string { return "corp" }

// TestTURNCredentialsNeedAdmin: minting TURN credentials hands out relay
// access, so an auditor may not.
func TestTURNCredentialsNeedAdmin(t *testing.T) {
	s, st := newTestServer(t, Config{})
	s.deps.TURN = func() TURNService { return fakeTURN{} }
	aud := tokenFor(t, st, "audrey", store.RoleAuditor)
	adm := tokenFor(t, st, "admin", store.RoleAdmin)
	body := `{"user":"webapp","ttl":"1h"}`
	if w := call(s, aud, "POST", "/api/v1/turn/credentials", "application/json", body); w.Code != http.StatusForbidden {
		t.Errorf("auditor minting: %d, want 403: %s", w.Code, w.Body)
	}
	if w := call(s, adm, "POST", "/api/v1/turn/credentials", "application/json", body); w.Code != http.StatusOK {
		t.Errorf("admin minting: %d, want 200: %s", w.Code, w.Body)
	}
}

const secretDoc = `version: 1
store:
  backend: sqlite
  dsn: postgres://portico:db-Pa55word@db.example:5432/portico
turn:
  realm: corp
  rest_secret: turn-Secret-123
snmp:
  communities:
    - {community: snmp-Comm-1, networks: [10.0.0.0/8]}
    - {community: snmp-Comm-2, networks: [192.0.2.0/24]}
  users:
    - {name: monitor, auth_key: snmp-Auth-123, priv_key: snmp-Priv-123}
  traps:
    - {address: "192.0.2.9:162", community: snmp-Trap-1}
ha:
  sync:
    secret: ha-Sync-Secret-1234567890
`

// TestSecretsMaskedInReads: no role reads turn.rest_secret or the DSN's
// password back, in JSON, in YAML or from an old version.
func TestSecretsMaskedInReads(t *testing.T) {
	s, st := newTestServer(t, Config{})
	if _, err := st.PutConfig(context.Background(), []byte(secretDoc), "test", "", 0); err != nil {
		t.Fatal(err)
	}
	for _, role := range []store.Role{store.RoleAuditor, store.RoleAdmin} {
		tok := tokenFor(t, st, "reader-"+string(role), role)
		for _, tc := range []struct {
			name, path string
			hdr        []string
		}{
			{"json", "/api/v1/config", nil},
			{"yaml", "/api/v1/config", []string{"Accept", "application/yaml"}},
			{"version", "/api/v1/config/versions/1", nil},
		} {
			t.Run(string(role)+"/"+tc.name, func(t *testing.T) {
				w := call(s, tok, "GET", tc.path, "", "", tc.hdr...)
				if w.Code != http.StatusOK {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
				b := w.Body.String()
				for _, secret := range []string{"db-Pa55word", "turn-Secret-123", "snmp-Comm-1", "snmp-Comm-2", "snmp-Auth-123", "snmp-Priv-123", "snmp-Trap-1", "ha-Sync-Secret-1234567890"} {
					if strings.Contains(b, secret) {
						t.Errorf("%s readable: %s", secret, b)
					}
				}
				if !strings.Contains(b, "db.example") || !strings.Contains(b, Mask) {
					t.Errorf("masked document lost its shape: %s", b)
				}
			})
		}
	}
}

// TestPutKeepsMaskedSecrets: an admin who PUTs back the masked document
// keeps the stored secrets; a new value replaces them.
func TestPutKeepsMaskedSecrets(t *testing.T) {
	s, st := newTestServer(t, Config{})
	ctx := context.Background()
	if _, err := st.PutConfig(ctx, []byte(secretDoc), "test", "", 0); err != nil {
		t.Fatal(err)
	}
	adm := tokenFor(t, st, "admin", store.RoleAdmin)
	w := call(s, adm, "GET", "/api/v1/config", "", "", "Accept", "application/yaml")
	masked := w.Body.String()
	if strings.Contains(masked, "turn-Secret-123") {
		t.Fatalf("GET shows the secret: %s", masked)
	}
	edited := strings.Replace(masked, "realm: corp", "realm: corp2", 1)
	if w := call(s, adm, "PUT", "/api/v1/config", "application/yaml", edited, "If-Match", `"1"`); w.Code != http.StatusOK {
		t.Fatalf("PUT masked document: %d %s", w.Code, w.Body)
	}
	v, _ := st.ActiveConfig(ctx)
	doc := string(v.Document)
	if !strings.Contains(doc, "rest_secret: turn-Secret-123") || !strings.Contains(doc, "portico:db-Pa55word@db.example") || !strings.Contains(doc, "realm: corp2") ||
		!strings.Contains(doc, "snmp-Comm-2") || !strings.Contains(doc, "snmp-Priv-123") || !strings.Contains(doc, "snmp-Trap-1") || !strings.Contains(doc, "ha-Sync-Secret-1234567890") {
		t.Fatalf("stored after PUT of the masked document:\n%s", doc)
	}
	changed := strings.Replace(edited, "rest_secret: '"+Mask+"'", "rest_secret: new-secret-456", 1)
	if w := call(s, adm, "PUT", "/api/v1/config", "application/yaml", changed, "If-Match", `"2"`); w.Code != http.StatusOK {
		t.Fatalf("PUT new secret: %d %s", w.Code, w.Body)
	}
	v, _ = st.ActiveConfig(ctx)
	if !strings.Contains(string(v.Document), "rest_secret: new-secret-456") {
		t.Fatalf("new secret not stored:\n%s", v.Document)
	}
	var body struct{ Document string }
	json.Unmarshal(call(s, adm, "GET", "/api/v1/config/versions/2", "", "").Body.Bytes(), &body)
	if strings.Contains(body.Document, "turn-Secret-123") {
		t.Errorf("old version shows the secret")
	}
}

// TestMaskedSecretWithoutStoredValue: the placeholder where nothing is
// stored is refused rather than stored as the secret.
func TestMaskedSecretWithoutStoredValue(t *testing.T) {
	s, st := newTestServer(t, Config{})
	if _, err := st.PutConfig(context.Background(), []byte("version: 1\n"), "test", "", 0); err != nil {
		t.Fatal(err)
	}
	adm := tokenFor(t, st, "admin", store.RoleAdmin)
	doc := "version: 1\nturn:\n  rest_secret: '" + Mask + "'\n"
	if w := call(s, adm, "PUT", "/api/v1/config", "application/yaml", doc, "If-Match", `"1"`); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("placeholder with nothing stored: %d %s", w.Code, w.Body)
	}
}

// TestDSNPasswordRoundTrip: the password of either DSN form is masked and
// put back from the stored DSN, with the rest of the DSN as edited.
func TestDSNPasswordRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, stored, masked, edited, want string }{
		{"url", "postgres://u:p%40ss@h:5432/db", "postgres://u:" + Mask + "@h:5432/db", "postgres://u:" + Mask + "@h2:5432/db", "postgres://u:p%40ss@h2:5432/db"},
		{"url query", "postgres://u@h/db?password=pw&sslmode=require", "postgres://u@h/db?password=" + Mask + "&sslmode=require", "", ""},
		{"key value", "host=h user=u password=pw dbname=db", "host=h user=u password=" + Mask + " dbname=db", "host=h2 user=u password=" + Mask + " dbname=db", "host=h2 user=u password=pw dbname=db"},
		{"quoted", "host=h password='a b' dbname=db", "host=h password=" + Mask + " dbname=db", "", ""},
		{"no password", "postgres://u@h/db", "postgres://u@h/db", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := maskDSN(tc.stored); got != tc.masked {
				t.Errorf("maskDSN(%q) = %q, want %q", tc.stored, got, tc.masked)
			}
			if tc.edited == "" {
				return
			}
			pw, _ := dsnPassword(tc.stored)
			if got, ok := setDSNPassword(tc.edited, pw); !ok || got != tc.want {
				t.Errorf("setDSNPassword = %q %v, want %q", got, ok, tc.want)
			}
		})
	}
}

// TestLoginTakesName: login names the account "name" as every other body
// does; the older "username" still works.
func TestLoginTakesName(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	for _, body := range []string{`{"name":"admin","password":"admin-password"}`, `{"username":"admin","password":"admin-password"}`} {
		if w := call(s, "", "POST", "/api/v1/login", "application/json", body); w.Code != http.StatusOK {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
	if w := call(s, "", "POST", "/api/v1/login", "application/json", `{"name":"admin","username":"other","password":"admin-password"}`); w.Code != http.StatusBadRequest {
		t.Errorf("two different names: %d %s", w.Code, w.Body)
	}
}

// FuzzMaskSecrets: masking never panics, and writing the masked document
// back restores every secret exactly (TestSecretsMaskedInReads checks
// that the secrets are hidden).
func FuzzMaskSecrets(f *testing.F) {
	f.Add([]byte(secretDoc))
	f.Add([]byte("store:\n  dsn: host=h password='a b' user=u\n"))
	f.Add([]byte("turn: {rest_secret: x}\n"))
	f.Add([]byte("store:\n  dsn: password=' '0\n"))
	f.Add([]byte("store:\n  dsn: password='a b c\n"))
	f.Add([]byte("store:\n  dsn: postgres://u:p@h/db?password=q\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("snmp:\n  users: [{auth_key: a}, {priv_key: b}]\n  communities: x\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		masked := MaskSecrets(doc)
		var root yaml.Node
		if yaml.Unmarshal(doc, &root) != nil {
			return
		}
		restored, err := KeepSecrets(masked, doc)
		if err != nil {
			return // a document that already held the mask where nothing was stored
		}
		var back yaml.Node
		if err := yaml.Unmarshal(restored, &back); err != nil {
			t.Fatalf("restored document does not parse: %v\n%s", err, restored)
		}
		for _, f := range concreteFields(&root) {
			orig, got := lookup(&root, f.path), lookup(&back, f.path)
			if orig == nil || strings.Contains(orig.Value, Mask) {
				continue
			}
			if got == nil {
				t.Fatalf("%v lost", f.path)
			}
			if f.dsn {
				op, ok1 := dsnPassword(orig.Value)
				gp, ok2 := dsnPassword(got.Value)
				if ok1 != ok2 || op != gp {
					t.Fatalf("%v password %q came back as %q", f.path, op, gp)
				}
				continue
			}
			if got.Value != orig.Value {
				t.Fatalf("%v %q came back as %q", f.path, orig.Value, got.Value)
			}
		}
	})
}

// TestTURNUserRealmFromConfig: with the TURN service off, a long-term user
// is stored under the active configuration's turn.realm, where the service
// will look for it once enabled.
func TestTURNUserRealmFromConfig(t *testing.T) {
	s, st := newTestServer(t, Config{})
	ctx := context.Background()
	if _, err := st.PutConfig(ctx, []byte("version: 1\nturn:\n  realm: corp.example\n"), "test", "", 0); err != nil {
		t.Fatal(err)
	}
	adm := tokenFor(t, st, "admin", store.RoleAdmin)
	if w := call(s, adm, "POST", "/api/v1/turn/users", "application/json", `{"name":"alice","password":"alice-turn-pw"}`); w.Code != http.StatusCreated {
		t.Fatalf("put turn user: %d %s", w.Code, w.Body)
	}
	if _, err := st.TURNUser(ctx, "corp.example", "alice"); err != nil {
		us, _ := st.TURNUsers(ctx)
		t.Fatalf("not stored under the configured realm: %v; stored %+v", err, us)
	}
	if w := call(s, adm, "DELETE", "/api/v1/turn/users/alice", "", ""); w.Code != http.StatusNoContent {
		t.Fatalf("delete under the configured realm: %d %s", w.Code, w.Body)
	}
}
