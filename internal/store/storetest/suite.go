package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// Open makes a fresh, empty store for one test.
type Open func(t *testing.T) store.Store

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)

// Run runs the whole suite against a backend.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st store.Store)
	}{
		{"config versions", testConfig},
		{"users", testUsers},
		{"tokens", testTokens},
		{"certificates and turn users", testCertsTURN},
		{"history", testHistory},
		{"snapshot and restore", testSnapshotRestore},
		{"concurrent writers", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func testConfig(t *testing.T, st store.Store) {
	c := ctx(t)
	if _, err := st.ActiveConfig(c); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ActiveConfig on empty store = %v, want ErrNotFound", err)
	}
	v1, err := st.PutConfig(c, []byte("version: 1\n"), "alice", "first", 0)
	if err != nil || v1.Version != 1 || v1.SHA256 == "" {
		t.Fatalf("PutConfig = %+v, %v", v1, err)
	}
	if _, err := st.PutConfig(c, []byte("x"), "bob", "", 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale PutConfig = %v, want ErrConflict", err)
	}
	v2, err := st.PutConfig(c, []byte("version: 1\n#2\n"), "bob", "second", 1)
	if err != nil || v2.Version != 2 {
		t.Fatalf("PutConfig v2 = %+v, %v", v2, err)
	}
	if _, err := st.PutConfig(c, []byte("any"), "carol", "", -1); err != nil {
		t.Fatalf("unchecked PutConfig: %v", err)
	}
	a, err := st.ActiveConfig(c)
	if err != nil || a.Version != 3 || a.Author != "carol" {
		t.Fatalf("ActiveConfig = %+v, %v", a, err)
	}
	got, err := st.ConfigVersion(c, 2)
	if err != nil || string(got.Document) != "version: 1\n#2\n" || got.Comment != "second" {
		t.Fatalf("ConfigVersion(2) = %+v, %v", got, err)
	}
	if _, err := st.ConfigVersion(c, 99); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ConfigVersion(99) = %v", err)
	}
	vs, err := st.ConfigVersions(c, 2)
	if err != nil || len(vs) != 2 || vs[0].Version != 3 || vs[1].Version != 2 || vs[0].Document != nil {
		t.Fatalf("ConfigVersions = %+v, %v", vs, err)
	}
	// Concurrent writers from the same base: exactly one wins.
	var wg sync.WaitGroup
	var wins, conflicts int
	var mu sync.Mutex
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := st.PutConfig(c, []byte(fmt.Sprint(i)), "racer", "", 3)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Errorf("racing PutConfig: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if wins != 1 || conflicts != 7 {
		t.Errorf("racing PutConfig: %d wins, %d conflicts; want 1 and 7", wins, conflicts)
	}
}

func user(name string, role store.Role) store.User {
	return store.User{Name: name, PasswordHash: []byte("$2a$10$abcdefghijklmnopqrstuuQ9Vq2Jz8Zs1X9vOq9o0b6bqN8m2m1e"), Role: role, CreatedAt: t0, UpdatedAt: t0}
}

func testUsers(t *testing.T, st store.Store) {
	c := ctx(t)
	if err := st.CreateUser(c, user("bob", store.RoleAuditor)); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(c, user("alice", store.RoleAdmin)); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(c, user("alice", store.RoleAdmin)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate CreateUser = %v, want ErrExists", err)
	}
	u, err := st.User(c, "alice")
	if err != nil || !reflect.DeepEqual(u, user("alice", store.RoleAdmin)) {
		t.Fatalf("User = %+v, %v", u, err)
	}
	u.Disabled, u.Role, u.UpdatedAt = true, store.RoleAuditor, t0.Add(time.Hour)
	if err := st.UpdateUser(c, u); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.User(c, "alice"); !got.Disabled || got.Role != store.RoleAuditor || !got.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("after update %+v", got)
	}
	if err := st.UpdateUser(c, user("nobody", store.RoleAdmin)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser(nobody) = %v", err)
	}
	us, err := st.Users(c)
	if err != nil || len(us) != 2 || us[0].Name != "alice" {
		t.Fatalf("Users = %+v, %v", us, err)
	}
	if err := st.DeleteUser(c, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.User(c, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user still there: %v", err)
	}
	if err := st.DeleteUser(c, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteUser = %v", err)
	}
}

func hash(b byte) []byte {
	h := make([]byte, 32)
	for i := range h {
		h[i] = b
	}
	return h
}

func testTokens(t *testing.T, st store.Store) {
	c := ctx(t)
	st.CreateUser(c, user("alice", store.RoleAdmin))
	tok := store.Token{ID: "t1", Hash: hash(1), User: "alice", Kind: store.TokenAPI, Name: "ci", CreatedAt: t0}
	if err := st.CreateToken(c, tok); err != nil {
		t.Fatal(err)
	}
	sess := store.Token{ID: "s1", Hash: hash(2), User: "alice", Kind: store.TokenSession, Name: "login", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := st.CreateToken(c, sess); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateToken(c, store.Token{ID: "t2", Hash: hash(1), User: "alice", Kind: store.TokenAPI, CreatedAt: t0}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate hash = %v, want ErrExists", err)
	}
	got, err := st.TokenByHash(c, hash(1))
	if err != nil || !reflect.DeepEqual(got, tok) {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := st.TokenByHash(c, hash(9)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown hash = %v", err)
	}
	ts, _ := st.Tokens(c, "alice")
	if len(ts) != 2 {
		t.Errorf("Tokens = %+v", ts)
	}
	n, err := st.DeleteExpiredTokens(c, t0.Add(2*time.Hour))
	if err != nil || n != 1 {
		t.Errorf("DeleteExpiredTokens = %d, %v; want 1 (the never-expiring token stays)", n, err)
	}
	if err := st.DeleteToken(c, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteToken(c, "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteToken = %v", err)
	}
	// Deleting a user removes its tokens.
	st.CreateToken(c, store.Token{ID: "t3", Hash: hash(3), User: "alice", Kind: store.TokenAPI, CreatedAt: t0})
	st.DeleteUser(c, "alice")
	if _, err := st.TokenByHash(c, hash(3)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token of deleted user: %v", err)
	}
}

func testCertsTURN(t *testing.T, st store.Store) {
	c := ctx(t)
	cert := store.Certificate{Name: "edge cert (2026) ÄÖ/../x", CertPEM: []byte("C1"), KeyPEM: []byte("K1"), CreatedAt: t0}
	if err := st.PutCertificate(c, cert); err != nil {
		t.Fatal(err)
	}
	cert.CertPEM = []byte("C2")
	if err := st.PutCertificate(c, cert); err != nil {
		t.Fatal(err)
	}
	cs, err := st.Certificates(c)
	if err != nil || len(cs) != 1 || string(cs[0].CertPEM) != "C2" || cs[0].Name != cert.Name {
		t.Fatalf("Certificates = %+v, %v", cs, err)
	}
	if err := st.DeleteCertificate(c, cert.Name); err != nil {
		t.Fatal(err)
	}
	u := store.TURNUser{Realm: "portico", Name: "guest", Key: []byte{1, 2, 3}, CreatedAt: t0}
	if err := st.PutTURNUser(c, u); err != nil {
		t.Fatal(err)
	}
	got, err := st.TURNUser(c, "portico", "guest")
	if err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("TURNUser = %+v, %v", got, err)
	}
	if _, err := st.TURNUser(c, "other", "guest"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TURNUser other realm = %v", err)
	}
	if us, _ := st.TURNUsers(c); len(us) != 1 {
		t.Errorf("TURNUsers = %+v", us)
	}
	if err := st.DeleteTURNUser(c, "portico", "guest"); err != nil {
		t.Fatal(err)
	}
}

func call(i int) store.CallRecord {
	start := t0.Add(time.Duration(i) * time.Minute)
	return store.CallRecord{
		ID: fmt.Sprintf("call-%03d", i), Protocol: "sip", CallType: "guest", From: fmt.Sprintf("sip:user%d@outside.example", i), To: "sip:7001@inside",
		SourceAddr: "203.0.113.7:5060", StartedAt: start, AnsweredAt: start.Add(2 * time.Second), EndedAt: start.Add(30 * time.Second), DurationMs: 28000,
		EndedBy: "caller", Status: 200, Disposition: map[bool]string{true: "callee busy", false: "normal"}[i%5 == 0], Codecs: "PCMA",
		Streams: []store.StreamStats{{Kind: "audio", PacketsIn: 1400, PacketsOut: 1399, BytesIn: 240800, BytesOut: 240628, PacketsLost: 1, JitterMs: 2.5, RTTMs: 31}},
	}
}

func testHistory(t *testing.T, st store.Store) {
	c := ctx(t)
	for i := 0; i < 30; i++ {
		if err := st.AddCall(c, call(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddCall(c, call(3)); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate call = %v, want ErrExists", err)
	}
	all, err := st.Calls(c, store.Query{Limit: 100})
	if err != nil || len(all) != 30 || all[0].ID != "call-029" {
		t.Fatalf("Calls = %d rows (first %v), %v", len(all), all[0].ID, err)
	}
	if !reflect.DeepEqual(all[29], call(0)) {
		t.Errorf("call round trip:\n got %+v\nwant %+v", all[29], call(0))
	}
	page, _ := st.Calls(c, store.Query{Limit: 5, Offset: 5})
	if len(page) != 5 || page[0].ID != "call-024" {
		t.Errorf("page = %v", page)
	}
	busy, _ := st.Calls(c, store.Query{Search: "busy"})
	if len(busy) != 6 {
		t.Errorf("search busy: %d rows, want 6", len(busy))
	}
	window, _ := st.Calls(c, store.Query{Since: t0.Add(10 * time.Minute), Until: t0.Add(15 * time.Minute)})
	if len(window) != 5 { // ended 10:10:30 .. 10:14:30
		t.Errorf("window: %d rows, want 5", len(window))
	}
	for i := 0; i < 3; i++ {
		if err := st.AddRegistrationEvent(c, store.RegistrationEvent{Time: t0.Add(time.Duration(i) * time.Second), Protocol: "sip", AOR: "sip:alice@corp", Contact: "sip:alice@203.0.113.9", Source: "203.0.113.9:41000", Transport: "udp", Kind: []string{"registered", "refreshed", "rejected"}[i], Expires: 120, Reason: "403 Forbidden"}); err != nil {
			t.Fatal(err)
		}
		if err := st.AddEvent(c, store.Event{Time: t0.Add(time.Duration(i) * time.Second), Severity: "info", Component: "store", Message: fmt.Sprint("event ", i)}); err != nil {
			t.Fatal(err)
		}
		if err := st.AppendAudit(c, store.AuditEntry{Time: t0.Add(time.Duration(i) * time.Second), User: "alice", Source: "127.0.0.1", Action: "config.replace", Target: "config", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	regs, _ := st.RegistrationEvents(c, store.Query{Search: "rejected"})
	if len(regs) != 1 || regs[0].Expires != 120 || regs[0].ID == 0 {
		t.Errorf("registration events = %+v", regs)
	}
	evs, _ := st.Events(c, store.Query{Limit: 2})
	if len(evs) != 2 || evs[0].Message != "event 2" {
		t.Errorf("events = %+v", evs)
	}
	au, _ := st.Audit(c, store.Query{})
	if len(au) != 3 || au[0].Detail != "2" || !au[0].Time.Equal(t0.Add(2*time.Second)) {
		t.Errorf("audit = %+v", au)
	}
}

// Seed fills a store with one of everything (and some history).
func Seed(t *testing.T, st store.Store) {
	c := ctx(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.PutConfig(c, []byte("version: 1\n"), "alice", "first", 0)
	must(err)
	must(st.CreateUser(c, user("alice", store.RoleAdmin)))
	must(st.CreateToken(c, store.Token{ID: "t1", Hash: hash(1), User: "alice", Kind: store.TokenAPI, Name: "ci", CreatedAt: t0}))
	must(st.PutCertificate(c, store.Certificate{Name: "edge", CertPEM: []byte("C"), KeyPEM: []byte("K"), CreatedAt: t0}))
	must(st.PutTURNUser(c, store.TURNUser{Realm: "portico", Name: "guest", Key: []byte{9}, CreatedAt: t0}))
	for i := 0; i < 5; i++ {
		must(st.AddCall(c, call(i)))
		must(st.AddRegistrationEvent(c, store.RegistrationEvent{Time: t0, Protocol: "h323", AOR: "1001", Kind: "registered"}))
		must(st.AddEvent(c, store.Event{Time: t0, Severity: "warning", Component: "media", Message: "x"}))
		must(st.AppendAudit(c, store.AuditEntry{Time: t0, User: "alice", Action: "login"}))
	}
}

func testSnapshotRestore(t *testing.T, st store.Store) {
	c := ctx(t)
	Seed(t, st)
	snap, err := st.Snapshot(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Calls) != 5 || len(snap.Audit) != 5 || len(snap.ConfigVersions) != 1 || snap.SchemaVersion < 1 {
		t.Fatalf("snapshot counts: calls %d audit %d config %d", len(snap.Calls), len(snap.Audit), len(snap.ConfigVersions))
	}
	// A restore that fails half way replaces nothing.
	bad := *snap
	bad.Calls = append(append([]store.CallRecord{}, snap.Calls...), snap.Calls[0]) // duplicate key
	if err := st.Restore(c, &bad); err == nil {
		t.Fatal("Restore with a duplicate call succeeded")
	}
	again, err := st.Snapshot(c)
	if err != nil || !reflect.DeepEqual(again, snap) {
		t.Fatalf("a failed restore changed the store")
	}
	// Restore then snapshot gives the same rows; new rows get fresh IDs after it.
	if err := st.Restore(c, snap); err != nil {
		t.Fatal(err)
	}
	if err := st.AddEvent(c, store.Event{Time: t0, Severity: "info", Component: "x", Message: "after"}); err != nil {
		t.Fatalf("insert after restore: %v", err)
	}
	evs, _ := st.Events(c, store.Query{Search: "after"})
	if len(evs) != 1 || evs[0].ID <= snap.Events[len(snap.Events)-1].ID {
		t.Errorf("event after restore got id %v; sequence not reset past %d", evs, snap.Events[len(snap.Events)-1].ID)
	}
}

func testConcurrent(t *testing.T, st store.Store) {
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				rec := call(g*100 + i)
				if err := st.AddCall(c, rec); err != nil {
					errs <- err
				}
				if _, err := st.Calls(c, store.Query{Limit: 5}); err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent access: %v", err)
	}
	all, _ := st.Calls(c, store.Query{Limit: 1000})
	if len(all) != 200 {
		t.Errorf("%d calls after 200 concurrent writes", len(all))
	}
}
