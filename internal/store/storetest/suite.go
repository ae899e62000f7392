package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
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
		{"guard blocks", testGuardBlocks},
		{"history", testHistory},
		{"history search and paging", testHistoryQueries},
		{"snapshot and restore", testSnapshotRestore},
		{"restore edge cases", testRestoreEdges},
		{"concurrent writers", testConcurrent},
		{"snapshot is consistent under writes", testSnapshotConsistent},
		{"spool over a flaky store", testSpoolFlaky},
		{"history retention", testPrune},
		{"folded rows keep their count", testCount},
		{"node lease", testLease},
		{"cluster registrations", testClusterRegistrations},
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
	// Unchecked writers never conflict; versions stay contiguous.
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := st.PutConfig(c, []byte(fmt.Sprint("free ", i)), "racer", "", -1); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unchecked racing PutConfig: %v", err)
	}
	all, err := st.ConfigVersions(c, 0)
	if err != nil || len(all) != 12 {
		t.Fatalf("ConfigVersions(0) = %d versions, %v; want 12", len(all), err)
	}
	for i, v := range all {
		if v.Version != int64(12-i) {
			t.Errorf("versions not contiguous newest first: %d at %d", v.Version, i)
		}
	}
	if a, _ := st.ActiveConfig(c); a.SHA256 != fmt.Sprintf("%x", sha256.Sum256(a.Document)) {
		t.Errorf("sha256 %s does not match the document", a.SHA256)
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
	if err := st.CreateToken(c, store.Token{ID: "t1", Hash: hash(7), User: "alice", Kind: store.TokenAPI, CreatedAt: t0}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate id = %v, want ErrExists", err)
	}
	if err := st.CreateToken(c, store.Token{ID: "t9", Hash: hash(8), User: "ghost", Kind: store.TokenAPI, CreatedAt: t0}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token for a user that does not exist = %v, want ErrNotFound", err)
	}
	if ts, err := st.Tokens(c, "ghost"); err != nil || len(ts) != 0 {
		t.Errorf("Tokens(ghost) = %v, %v", ts, err)
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
	if err := st.DeleteCertificate(c, cert.Name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteCertificate = %v", err)
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
	u.Key = []byte{4, 5, 6}
	if err := st.PutTURNUser(c, u); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.TURNUser(c, "portico", "guest"); !reflect.DeepEqual(got, u) {
		t.Errorf("TURNUser after upsert = %+v", got)
	}
	if err := st.DeleteTURNUser(c, "portico", "guest"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteTURNUser(c, "portico", "guest"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteTURNUser = %v", err)
	}
}

func testGuardBlocks(t *testing.T, st store.Store) {
	c := ctx(t)
	net := store.GuardBlock{Source: "203.0.113.0/24", Reason: "abuse", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	addr := store.GuardBlock{Source: "198.51.100.7/32", Reason: "manual", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	for _, b := range []store.GuardBlock{net, addr} {
		if err := st.PutGuardBlock(c, b); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := st.GuardBlocks(c); err != nil || !reflect.DeepEqual(got, []store.GuardBlock{addr, net}) {
		t.Fatalf("GuardBlocks = %+v, %v", got, err)
	}
	net.Reason, net.ExpiresAt = "longer", t0.Add(2*time.Hour)
	if err := st.PutGuardBlock(c, net); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GuardBlocks(c); len(got) != 2 || !reflect.DeepEqual(got[1], net) {
		t.Errorf("GuardBlocks after replacing one = %+v", got)
	}
	if n, err := st.DeleteExpiredGuardBlocks(c, t0.Add(30*time.Minute)); err != nil || n != 1 {
		t.Errorf("DeleteExpiredGuardBlocks = %d, %v; want the one ended", n, err)
	}
	if err := st.DeleteGuardBlock(c, net.Source); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteGuardBlock(c, net.Source); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteGuardBlock = %v", err)
	}
	if got, err := st.GuardBlocks(c); err != nil || len(got) != 0 {
		t.Errorf("GuardBlocks after removing all = %+v, %v", got, err)
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
	must(st.PutGuardBlock(c, store.GuardBlock{Source: "203.0.113.0/24", Reason: "abuse", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
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
	if len(snap.Calls) != 5 || len(snap.Audit) != 5 || len(snap.ConfigVersions) != 1 || len(snap.GuardBlocks) != 1 || snap.SchemaVersion < 1 {
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

func testHistoryQueries(t *testing.T, st store.Store) {
	c := ctx(t)
	msgs := []string{"Link DOWN on eth1", "50% packet loss", "5 packets lost", "user_a logged in", `path C:\x`, "plain"}
	for i, m := range msgs {
		// Every event at the same instant: order falls to the id.
		if err := st.AddEvent(c, store.Event{Time: t0, Severity: "info", Component: "test", Message: m}); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	tests := []struct {
		name   string
		search string
		want   []string
	}{
		{"case folds ASCII", "link down", []string{"Link DOWN on eth1"}},
		{"percent is literal", "50%", []string{"50% packet loss"}},
		{"lone percent", "%", []string{"50% packet loss"}},
		{"underscore is literal", "user_", []string{"user_a logged in"}},
		{"lone underscore", "_", []string{"user_a logged in"}},
		{"backslash is literal", `C:\x`, []string{`path C:\x`}},
		{"substring", "packet", []string{"50% packet loss", "5 packets lost"}},
		{"no match", "nothing like this", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := st.Events(c, store.Query{Search: tc.search})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range evs {
				got = append(got, e.Message)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("Search %q = %q, want %q", tc.search, got, want)
			}
		})
	}
	// Equal times: newest id first, and pages neither overlap nor skip.
	var paged []int64
	for off := 0; off < len(msgs); off += 4 {
		page, err := st.Events(c, store.Query{Limit: 4, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			paged = append(paged, e.ID)
		}
	}
	if len(paged) != len(msgs) || !slices.IsSortedFunc(paged, func(a, b int64) int { return int(b - a) }) || len(slices.Compact(slices.Clone(paged))) != len(msgs) {
		t.Errorf("paged ids %v: want %d distinct ids, descending", paged, len(msgs))
	}
	if evs, err := st.Events(c, store.Query{Offset: 100}); err != nil || len(evs) != 0 {
		t.Errorf("offset past the end = %v, %v", evs, err)
	}
	// Since and Until are inclusive.
	if evs, _ := st.Events(c, store.Query{Since: t0, Until: t0}); len(evs) != len(msgs) {
		t.Errorf("Since = Until = the events' time: %d rows, want %d", len(evs), len(msgs))
	}
	if evs, _ := st.Events(c, store.Query{Since: t0.Add(time.Microsecond)}); len(evs) != 0 {
		t.Errorf("Since after every event: %d rows", len(evs))
	}
	// Audit and registration search look at their own text columns.
	st.AppendAudit(c, store.AuditEntry{Time: t0, User: "alice", Source: "cli", Action: "user.create", Target: "bob"})
	if au, _ := st.Audit(c, store.Query{Search: "BOB"}); len(au) != 1 {
		t.Errorf("audit search by target: %+v", au)
	}
	st.AddRegistrationEvent(c, store.RegistrationEvent{Time: t0, Protocol: "h323", AOR: "h323:1001", Kind: "registered"})
	if rs, _ := st.RegistrationEvents(c, store.Query{Search: "1001"}); len(rs) != 1 || rs[0].Protocol != "h323" {
		t.Errorf("registration search by alias: %+v", rs)
	}
	// A call with no streams and no answer reads back as written.
	missed := store.CallRecord{ID: "missed", Protocol: "h323", CallType: "inbound", From: "1001", To: "2002", StartedAt: t0, EndedAt: t0.Add(time.Second), EndedBy: "callee", Status: 17, Disposition: "callee busy"}
	if err := st.AddCall(c, missed); err != nil {
		t.Fatal(err)
	}
	if cs, _ := st.Calls(c, store.Query{Search: "missed"}); len(cs) != 1 || !reflect.DeepEqual(cs[0], missed) {
		t.Errorf("unanswered call round trip = %+v", cs)
	}
}

func testRestoreEdges(t *testing.T, st store.Store) {
	c := ctx(t)
	Seed(t, st)
	before, err := st.Snapshot(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Restore(c, nil); err == nil {
		t.Error("Restore(nil) succeeded")
	}
	newer := *before
	newer.SchemaVersion = before.SchemaVersion + 1
	if err := st.Restore(c, &newer); err == nil {
		t.Error("Restore of a snapshot from a newer schema succeeded")
	}
	// A token whose user is missing fails the whole restore.
	orphan := *before
	orphan.Users = nil
	if err := st.Restore(c, &orphan); err == nil {
		t.Error("Restore with an orphan token succeeded")
	}
	if after, _ := st.Snapshot(c); !reflect.DeepEqual(after, before) {
		t.Fatal("a refused restore changed the store")
	}
	// Backups travel as JSON; that trip changes nothing either.
	b, err := json.Marshal(before)
	if err != nil {
		t.Fatal(err)
	}
	var decoded store.Snapshot
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	if err := st.Restore(c, &decoded); err != nil {
		t.Fatal(err)
	}
	if after, _ := st.Snapshot(c); !reflect.DeepEqual(after, before) {
		t.Errorf("JSON snapshot restore changed the data")
	}
	// An empty snapshot empties the store.
	if err := st.Restore(c, &store.Snapshot{SchemaVersion: before.SchemaVersion}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ActiveConfig(c); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("config after restoring an empty snapshot: %v", err)
	}
	if cs, _ := st.Calls(c, store.Query{}); len(cs) != 0 {
		t.Errorf("%d calls after restoring an empty snapshot", len(cs))
	}
}

// A snapshot is one read transaction: a writer that adds a config version
// and then its audit entry can never be seen with more audit entries than
// versions, however the reads interleave with the writes.
func testSnapshotConsistent(t *testing.T, st store.Store) {
	c := ctx(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := st.PutConfig(c, []byte(fmt.Sprint("v", i)), "w", "", -1); err != nil {
				writeErr = err
				return
			}
			if err := st.AppendAudit(c, store.AuditEntry{Time: t0, User: "w", Action: "config.replace"}); err != nil {
				writeErr = err
				return
			}
		}
	}()
	for range 30 {
		snap, err := st.Snapshot(c)
		if err != nil {
			t.Error(err)
			break
		}
		if len(snap.Audit) > len(snap.ConfigVersions) {
			t.Errorf("snapshot saw %d audit entries but only %d config versions: not one transaction", len(snap.Audit), len(snap.ConfigVersions))
			break
		}
	}
	close(stop)
	wg.Wait()
	if writeErr != nil {
		t.Errorf("writer beside snapshots: %v", writeErr)
	}
}

// Flaky is a store whose history writes fail with store.ErrUnavailable
// while Down is set, as a lost database would.
type Flaky struct {
	store.Store
	Down atomic.Bool
}

func (f *Flaky) fail() error {
	if f.Down.Load() {
		return fmt.Errorf("flaky: %w", store.ErrUnavailable)
	}
	return nil
}

// AddCall fails while Down.
func (f *Flaky) AddCall(ctx context.Context, c store.CallRecord) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.AddCall(ctx, c)
}

// AddEvent fails while Down.
func (f *Flaky) AddEvent(ctx context.Context, e store.Event) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.AddEvent(ctx, e)
}

// AppendAudit fails while Down.
func (f *Flaky) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.AppendAudit(ctx, e)
}

// AddRegistrationEvent fails while Down.
func (f *Flaky) AddRegistrationEvent(ctx context.Context, r store.RegistrationEvent) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.AddRegistrationEvent(ctx, r)
}

func testSpoolFlaky(t *testing.T, st store.Store) {
	f := &Flaky{Store: st}
	SpoolSurvives(t, st, f, func() { f.Down.Store(true) }, func() { f.Down.Store(false) })
}

// SpoolSurvives checks that history written through a spool over w while
// the store is down (between down() and up()) reaches st once it is back,
// in order, with none lost. w is what the spool writes to (st itself, or a
// wrapper that fails on cue); st is read to check.
func SpoolSurvives(t *testing.T, st, w store.Store, down, up func()) {
	t.Helper()
	c := ctx(t)
	runCtx, cancel := context.WithCancel(c)
	sp := store.NewSpool(w, nil, 1000)
	done := make(chan error, 1)
	go func() { done <- sp.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	if err := sp.AddCall(c, call(900)); err != nil {
		t.Fatal(err)
	}
	down()
	for i := 901; i < 911; i++ {
		if err := sp.AddCall(c, call(i)); err != nil {
			t.Fatalf("AddCall while the store is down: %v", err)
		}
	}
	if err := sp.AppendAudit(c, store.AuditEntry{Time: t0, User: "alice", Action: "while-down"}); err != nil {
		t.Fatalf("AppendAudit while the store is down: %v", err)
	}
	sp.AddEvent(store.Event{Time: t0, Severity: "warning", Component: "store", Message: "while-down"})
	if sp.Healthy() || sp.Pending() != 12 {
		t.Fatalf("spool healthy %v with %d pending while the store is down; want false, 12", sp.Healthy(), sp.Pending())
	}
	up()
	deadline := time.Now().Add(60 * time.Second)
	for !sp.Healthy() {
		if time.Now().After(deadline) {
			t.Fatalf("spool still has %d pending a minute after the store came back", sp.Pending())
		}
		time.Sleep(50 * time.Millisecond)
	}
	calls, err := st.Calls(c, store.Query{Search: "user9", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, cr := range calls {
		ids = append(ids, cr.ID)
	}
	slices.Sort(ids)
	var want []string
	for i := 900; i < 911; i++ {
		want = append(want, call(i).ID)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("calls after recovery %v, want %v", ids, want)
	}
	if au, _ := st.Audit(c, store.Query{Search: "while-down"}); len(au) != 1 {
		t.Errorf("audit entry written while down: %d found, want 1", len(au))
	}
	if ev, _ := st.Events(c, store.Query{Search: "while-down"}); len(ev) != 1 {
		t.Errorf("event written while down: %d found, want 1", len(ev))
	}
	if sp.Dropped() != 0 || sp.Failed() != 0 {
		t.Errorf("dropped %d failed %d", sp.Dropped(), sp.Failed())
	}
}

func testCount(t *testing.T, st store.Store) {
	c := ctx(t)
	cr := call(1)
	cr.Count = 39999
	if err := st.AddCall(c, cr); err != nil {
		t.Fatal(err)
	}
	r := store.RegistrationEvent{Time: t0, Protocol: "sip", AOR: "sip:x@corp", Source: "192.0.2.1:5060", Kind: "rejected", Reason: "404 Not Found", Count: 17}
	if err := st.AddRegistrationEvent(c, r); err != nil {
		t.Fatal(err)
	}
	calls, _ := st.Calls(c, store.Query{})
	regs, _ := st.RegistrationEvents(c, store.Query{})
	if len(calls) != 1 || calls[0].Count != 39999 || len(regs) != 1 || regs[0].Count != 17 {
		t.Fatalf("counts read back: calls %+v regs %+v", calls, regs)
	}
	snap, err := st.Snapshot(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Restore(c, snap); err != nil {
		t.Fatal(err)
	}
	again, _ := st.Snapshot(c)
	if again.Calls[0].Count != 39999 || again.RegistrationEvents[0].Count != 17 {
		t.Errorf("counts after restore: %d, %d", again.Calls[0].Count, again.RegistrationEvents[0].Count)
	}
}

func testPrune(t *testing.T, st store.Store) {
	c := ctx(t)
	count := func() (calls, regs, events int) {
		a, _ := st.Calls(c, store.Query{Limit: 10000})
		b, _ := st.RegistrationEvents(c, store.Query{Limit: 10000})
		e, _ := st.Events(c, store.Query{Limit: 10000})
		return len(a), len(b), len(e)
	}
	// 60 of each, a minute apart; audit is never pruned.
	for i := 0; i < 60; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		if err := st.AddCall(c, call(i)); err != nil {
			t.Fatal(err)
		}
		if err := st.AddRegistrationEvent(c, store.RegistrationEvent{Time: at, Protocol: "sip", AOR: fmt.Sprint("sip:u", i, "@corp"), Kind: "registered"}); err != nil {
			t.Fatal(err)
		}
		if err := st.AddEvent(c, store.Event{Time: at, Severity: "info", Component: "t", Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if err := st.AppendAudit(c, store.AuditEntry{Time: at, User: "u", Action: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	// By age: everything that ended before minute 20 goes (calls end 30 s
	// after they start, so call 19 ends at 19:30 and goes, call 20 stays).
	n, err := st.PruneHistory(c, t0.Add(20*time.Minute), 0)
	if err != nil || n != 3*20 {
		t.Fatalf("PruneHistory by age = %d, %v; want 60", n, err)
	}
	if a, b, e := count(); a != 40 || b != 40 || e != 40 {
		t.Fatalf("after pruning by age: %d calls, %d registration events, %d events; want 40 each", a, b, e)
	}
	// By count: the newest 25 of each stay.
	if _, err := st.PruneHistory(c, time.Time{}, 25); err != nil {
		t.Fatal(err)
	}
	if a, b, e := count(); a != 25 || b != 25 || e != 25 {
		t.Fatalf("after pruning to 25 rows: %d, %d, %d", a, b, e)
	}
	calls, _ := st.Calls(c, store.Query{Limit: 1})
	if calls[0].ID != "call-059" {
		t.Errorf("newest call %s pruned", calls[0].ID)
	}
	if au, _ := st.Audit(c, store.Query{Limit: 1000}); len(au) != 60 {
		t.Errorf("audit pruned: %d entries left", len(au))
	}
	if n, err := st.PruneHistory(c, t0, 1000); err != nil || n != 0 {
		t.Errorf("nothing to prune = %d, %v", n, err)
	}
}

func testLease(t *testing.T, st store.Store) {
	c := ctx(t)
	a := store.NodeLease{Node: "node-a", Name: "edge1", Host: "host-a", StartedAt: t0, RenewedAt: t0}
	b := store.NodeLease{Node: "node-b", Name: "edge2", Host: "host-b", StartedAt: t0.Add(time.Second), RenewedAt: t0.Add(time.Second)}
	const ttl = 30 * time.Second
	if _, err := st.AcquireLease(c, a, ttl, false); err != nil {
		t.Fatalf("first node: %v", err)
	}
	holder, err := st.AcquireLease(c, b, ttl, false)
	if !errors.Is(err, store.ErrLeaseHeld) || holder.Node != "node-a" || holder.Host != "host-a" || !holder.RenewedAt.Equal(t0) {
		t.Fatalf("second node = %+v, %v; want node-a's lease and ErrLeaseHeld", holder, err)
	}
	// The holder restarting takes its own lease back at once.
	if _, err := st.AcquireLease(c, a, ttl, false); err != nil {
		t.Fatalf("the holder again: %v", err)
	}
	if err := st.RenewLease(c, "node-a", t0.Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	b.RenewedAt = t0.Add(45 * time.Second) // 25 s after the renewal: still held
	if _, err := st.AcquireLease(c, b, ttl, false); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("within ttl of the renewal: %v", err)
	}
	b.RenewedAt = t0.Add(51 * time.Second) // expired
	if _, err := st.AcquireLease(c, b, ttl, false); err != nil {
		t.Fatalf("after the lease expired: %v", err)
	}
	if err := st.RenewLease(c, "node-a", t0.Add(52*time.Second)); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("renewal by the node that lost the lease = %v", err)
	}
	a.RenewedAt = t0.Add(52 * time.Second)
	if _, err := st.AcquireLease(c, a, ttl, true); err != nil {
		t.Fatalf("forced: %v", err)
	}
	if err := st.ReleaseLease(c, "node-b"); err != nil {
		t.Fatalf("release by a non-holder: %v", err)
	}
	if _, err := st.AcquireLease(c, b, ttl, false); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatal("a non-holder's release freed the lease")
	}
	if err := st.ReleaseLease(c, "node-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AcquireLease(c, b, ttl, false); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// clusterStore is what a node publishes its registrations through
// (both backends implement it beside store.Store).
type clusterStore interface {
	PublishRegistrations(ctx context.Context, node string, now time.Time, put, del []store.ClusterRegistration) error
	ClusterRegistrations(ctx context.Context, aliveSince, now time.Time) ([]store.ClusterRegistration, error)
	LeaveCluster(ctx context.Context, node string) error
}

func testClusterRegistrations(t *testing.T, st store.Store) {
	c := ctx(t)
	cs, ok := st.(clusterStore)
	if !ok {
		t.Fatalf("%T does not keep cluster registrations", st)
	}
	reg := func(node, aor, contact string, exp time.Duration) store.ClusterRegistration {
		return store.ClusterRegistration{Node: node, AOR: aor, Contact: contact, Source: "198.51.100.7:5060", Transport: "udp",
			Registered: t0, Refreshed: t0, Expires: t0.Add(exp)}
	}
	a1, a2 := reg("a", "sip:alice@example.com", "sip:alice@198.51.100.7:5060", time.Hour), reg("a", "sip:bob@example.com", "sip:bob@198.51.100.8:5060", time.Minute)
	b1 := reg("b", "sip:carol@example.com", "sip:carol@198.51.100.9:5060", time.Hour)
	if err := cs.PublishRegistrations(c, "a", t0, []store.ClusterRegistration{a1, a2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := cs.PublishRegistrations(c, "b", t0, []store.ClusterRegistration{b1}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := cs.ClusterRegistrations(c, t0.Add(-time.Second), t0)
	if err != nil || !reflect.DeepEqual(got, []store.ClusterRegistration{a1, a2, b1}) {
		t.Fatalf("ClusterRegistrations = %+v, %v", got, err)
	}
	// A refresh replaces the row; a removal deletes it.
	a1.Refreshed, a1.Expires = t0.Add(time.Minute), t0.Add(2*time.Hour)
	if err := cs.PublishRegistrations(c, "a", t0.Add(time.Minute), []store.ClusterRegistration{a1}, []store.ClusterRegistration{{AOR: a2.AOR, Contact: a2.Contact}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := cs.ClusterRegistrations(c, t0, t0.Add(time.Minute)); !reflect.DeepEqual(got, []store.ClusterRegistration{a1, b1}) {
		t.Errorf("after a refresh and a removal: %+v", got)
	}
	// Node b's heartbeat is older than aliveSince: its rows are ignored.
	if got, _ := cs.ClusterRegistrations(c, t0.Add(30*time.Second), t0.Add(time.Minute)); !reflect.DeepEqual(got, []store.ClusterRegistration{a1}) {
		t.Errorf("with b stale: %+v", got)
	}
	// Expired rows are not listed, and the next batch deletes them.
	if got, _ := cs.ClusterRegistrations(c, t0, t0.Add(90*time.Minute)); !reflect.DeepEqual(got, []store.ClusterRegistration{a1}) {
		t.Errorf("after b1 expired: %+v", got)
	}
	if err := cs.PublishRegistrations(c, "a", t0.Add(90*time.Minute), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := cs.PublishRegistrations(c, "b", t0.Add(90*time.Minute), nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := cs.ClusterRegistrations(c, t0, t0); !reflect.DeepEqual(got, []store.ClusterRegistration{a1}) {
		t.Errorf("b1 not deleted once expired: %+v", got)
	}
	// A batch larger than one statement's rows is written whole.
	var many []store.ClusterRegistration
	for i := range 600 {
		many = append(many, reg("m", fmt.Sprintf("sip:u%03d@example.com", i), "sip:u@198.51.100.1", time.Hour))
	}
	if err := cs.PublishRegistrations(c, "m", t0, many, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := cs.ClusterRegistrations(c, t0, t0); len(got) != 601 || !reflect.DeepEqual(got[1:], many) {
		t.Errorf("after 600 rows of node m: %d rows", len(got))
	}
	if err := cs.LeaveCluster(c, "m"); err != nil {
		t.Fatal(err)
	}
	// A node that leaves takes its rows and heartbeat with it.
	if err := cs.LeaveCluster(c, "a"); err != nil {
		t.Fatal(err)
	}
	if got, err := cs.ClusterRegistrations(c, time.Time{}, t0); err != nil || len(got) != 0 {
		t.Errorf("after a left: %+v, %v", got, err)
	}
}
