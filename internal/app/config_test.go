package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/sqlite"
	"github.com/portico-edge/portico/internal/testpeer"
)

// node is a test node's directory and file; start runs App.New on them.
type node struct {
	t    *testing.T
	dir  string
	file string
	mgmt string
}

func newNode(t *testing.T) *node {
	dir := t.TempDir()
	return &node{t: t, dir: dir, file: filepath.Join(dir, "portico.yaml"), mgmt: fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))}
}

// doc is a valid document with the given log level and extra sections.
func (n *node) doc(level string, extra ...string) string {
	return fmt.Sprintf("version: 1\nnode: {name: n1}\nmanagement: {listen: %q}\nlog: {level: %s, file: portico.log}\n", n.mgmt, level) + strings.Join(extra, "")
}

func (n *node) write(doc string) {
	if err := os.WriteFile(n.file, []byte(doc), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) start(opts Options) (*App, error) {
	opts.ConfigFile, opts.DataDir, opts.Console = n.file, filepath.Join(n.dir, "data"), io.Discard
	opts.Getenv = func(k string) string {
		if k == "PORTICO_ADMIN_PASSWORD" {
			return "admin-password-1"
		}
		return ""
	}
	return New(context.Background(), opts)
}

func (n *node) mustStart(opts Options) *App {
	n.t.Helper()
	a, err := n.start(opts)
	if err != nil {
		n.t.Fatal(err)
	}
	return a
}

func (n *node) log() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "data", "portico.log"))
	return string(b)
}

// active reads the store's active version with the node stopped.
func (n *node) active() (store.ConfigVersion, error) {
	st, err := sqlite.Open(context.Background(), filepath.Join(n.dir, "data", "portico.db"), nil)
	if err != nil {
		n.t.Fatal(err)
	}
	defer st.Close()
	return st.ActiveConfig(context.Background())
}

func statusConfig(t *testing.T, a *App) map[string]any {
	t.Helper()
	b, err := json.Marshal(a.status(context.Background())["config"])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("status config %s: %v", b, err)
	}
	return m
}

// TestFileImportRule: the store's active version is the truth; the file is
// imported on the first start and when it changed with no newer API edit;
// otherwise it is refused (with a warning) unless forced.
func TestFileImportRule(t *testing.T) {
	n := newNode(t)
	docA := n.doc("info")
	n.write(docA)
	a := n.mustStart(Options{})
	if v := a.cur.Load().version; v.Version != 1 || !strings.HasPrefix(v.Author, "file:") {
		t.Fatalf("first start: version %d by %q", v.Version, v.Author)
	}
	docB := n.doc("debug")
	if _, _, err := a.Replace(context.Background(), []byte(docB), "alice", "more logs", 1); err != nil {
		t.Fatal(err)
	}
	a.Close()

	t.Run("unchanged file keeps the API edit", func(t *testing.T) {
		a := n.mustStart(Options{})
		defer a.Close()
		if v := a.cur.Load().version; v.Version != 2 || v.Author != "alice" {
			t.Fatalf("restart with the same file: running version %d by %q, want 2 by alice", v.Version, v.Author)
		}
		if c := statusConfig(t, a); c["version"] != 2.0 || c["source"] != "api" || c["author"] != "alice" {
			t.Errorf("status config = %v", c)
		}
	})
	t.Run("changed file refused after an API edit", func(t *testing.T) {
		n.write(n.doc("warn"))
		a := n.mustStart(Options{})
		defer a.Close()
		if v := a.cur.Load().version; v.Version != 2 {
			t.Fatalf("a changed file replaced the API edit: running version %d by %q", v.Version, v.Author)
		}
		if l := n.log(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "version 2") || !strings.Contains(l, "version 1") {
			t.Errorf("no warning naming the versions:\n%s", l)
		}
		if c := statusConfig(t, a); c["file_import"] == nil || !strings.Contains(fmt.Sprint(c["file_import"]), "refused") {
			t.Errorf("status does not say the file was refused: %v", c)
		}
	})
	t.Run("force imports", func(t *testing.T) {
		a := n.mustStart(Options{ForceImport: true})
		defer a.Close()
		if v := a.cur.Load().version; v.Version != 3 || !strings.HasPrefix(v.Author, "file:") {
			t.Fatalf("forced import: running version %d by %q", v.Version, v.Author)
		}
		es, err := a.st.Audit(context.Background(), store.Query{Search: "version 3 (forced)"})
		if err != nil || len(es) != 1 || es[0].Action != "config.import" {
			t.Errorf("audit of the forced import: %+v, %v", es, err)
		}
	})
	t.Run("changed file imported when no API edit is newer", func(t *testing.T) {
		n.write(n.doc("error"))
		a := n.mustStart(Options{})
		defer a.Close()
		if v := a.cur.Load().version; v.Version != 4 || a.cur.Load().cfg.Log.Level != "error" {
			t.Fatalf("running version %d (%s)", v.Version, a.cur.Load().cfg.Log.Level)
		}
	})
	t.Run("SIGHUP follows the same rule", func(t *testing.T) {
		a := n.mustStart(Options{})
		defer a.Close()
		ctx := context.Background()
		if _, _, err := a.Replace(ctx, []byte(n.doc("debug")), "bob", "", 4); err != nil {
			t.Fatal(err)
		}
		n.write(n.doc("warn"))
		if err := a.Reimport(ctx); err == nil || !strings.Contains(err.Error(), "version 5") {
			t.Errorf("Reimport = %v, want a refusal naming version 5", err)
		}
		if v := a.cur.Load().version; v.Version != 5 || v.Author != "bob" {
			t.Fatalf("SIGHUP replaced the API edit: running version %d by %q", v.Version, v.Author)
		}
	})
}

// TestBootStoresOnlyWhatBuilds: a file the services refuse is not stored, so
// the node still starts from the store without --config.
func TestBootStoresOnlyWhatBuilds(t *testing.T) {
	n := newNode(t)
	// Parses, but the access proxy refuses a handoff to a handler that does
	// not exist (sip-wss needs the SIP edge).
	bad := n.doc("info", fmt.Sprintf("access_proxy:\n  enabled: true\n  listen: 127.0.0.1:%d\n  routes:\n    - {name: wss, match: {alpn: [http/1.1]}, action: handoff, handler: sip-wss}\n", testpeer.FreePort(t)))
	n.write(bad)
	if a, err := n.start(Options{}); err == nil {
		a.Close()
		t.Fatal("a document the access proxy refuses started")
	} else if es, ok := config.AsErrors(err); !ok || es[0].Path != "access_proxy.routes[0].handler" || es[0].Line != 9 {
		t.Errorf("error %v does not name the access_proxy field and its line", err)
	}
	if v, err := n.active(); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused document was stored as version %d (%v)", v.Version, err)
	}
	n.write(n.doc("info"))
	n.mustStart(Options{}).Close()
	n.write(strings.Replace(bad, "level: info", "level: debug", 1))
	if a, err := n.start(Options{}); err == nil {
		a.Close()
		t.Fatal("a changed document the access proxy refuses started")
	}
	if v, err := n.active(); err != nil || v.Version != 1 {
		t.Fatalf("active version %d (%v), want 1", v.Version, err)
	}
}

func apSection(listen string, route string) string {
	return fmt.Sprintf("access_proxy:\n  enabled: true\n  listen: %s\n  routes:\n    - {name: web, match: {host: [%s]}, action: http, upstream: \"https://127.0.0.1:1\"}\n", listen, route)
}

// startWithProxy starts a node with the access proxy on listen (not bound:
// the node does not Run).
func startWithProxy(t *testing.T) (*node, *App, string) {
	n := newNode(t)
	listen := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	n.write(n.doc("info", apSection(listen, "a.example")))
	a := n.mustStart(Options{})
	t.Cleanup(a.Close)
	return n, a, listen
}

// TestPendingRestart: every accepted change is applied live or named in
// pending_restart, which is an array even when empty.
func TestPendingRestart(t *testing.T) {
	n, a, listen := startWithProxy(t)
	ctx := context.Background()
	expect := int64(1)
	put := func(doc string) []string {
		t.Helper()
		v, _, err := a.Replace(ctx, []byte(doc), "alice", "", expect)
		if err != nil {
			t.Fatal(err)
		}
		expect = v.Version
		b, _ := json.Marshal(a.status(ctx)["pending_restart"])
		var p []string
		if string(b) == "null" {
			t.Errorf("pending_restart is null")
		}
		json.Unmarshal(b, &p)
		return p
	}
	if p := put(n.doc("debug", apSection(listen, "b.example"), "guard: {block_time: 7m}\n")); len(p) != 0 {
		t.Errorf("live changes (log level, a route, the guard) listed as pending: %v", p)
	}
	if h := a.built.accessProxy.Config().Routes[0].Match.Host; !slices.Equal(h, []string{"b.example"}) {
		t.Errorf("route not applied live: %v", h)
	}
	listen2 := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	p := put(n.doc("debug", apSection(listen2, "c.example")))
	if !slices.Contains(p, "access_proxy.listen") {
		t.Errorf("pending_restart = %v, want access_proxy.listen", p)
	}
	if h := a.built.accessProxy.Config().Routes[0].Match.Host; !slices.Equal(h, []string{"c.example"}) {
		t.Errorf("route beside a listener change not applied live: %v", h)
	}
	p = put(strings.Replace(n.doc("debug", apSection(listen2, "c.example")), "management: {", "management: {session_ttl: 1h, ", 1))
	if !slices.Contains(p, "management.session_ttl") || !slices.Contains(p, "access_proxy.listen") {
		t.Errorf("pending_restart = %v, want management.session_ttl and access_proxy.listen", p)
	}
	p = put(strings.Replace(n.doc("debug", apSection(listen2, "c.example")), "node: {name: n1}", "node: {name: n1, fd_reserve: 100}", 1))
	if !slices.Contains(p, "node.fd_reserve") {
		t.Errorf("pending_restart = %v, want node.fd_reserve (the reserve is made at start)", p)
	}
}

// TestReplaceLeaksNoGoroutines: accepting a change leaves no goroutine behind.
func TestReplaceLeaksNoGoroutines(t *testing.T) {
	n, a, listen := startWithProxy(t)
	ctx := context.Background()
	before := runtime.NumGoroutine()
	const puts = 20
	for i := range puts {
		level := []string{"debug", "info"}[i%2]
		if _, _, err := a.Replace(ctx, []byte(n.doc(level, apSection(listen, fmt.Sprintf("h%d.example", i)))), "alice", "", int64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	// Goroutines that end on their own get a moment; a leak never ends.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines before %d accepted changes, %d after", before, puts, after)
	}
}

// TestTurnRestartNamesDocumentFields: what the TURN service's Reload cannot
// apply is named by the document's field paths, the rest applies live.
func TestTurnRestartNamesDocumentFields(t *testing.T) {
	n := newNode(t)
	turnSec := func(port int, realm string, quota int) string {
		return fmt.Sprintf("turn:\n  enabled: true\n  udp: [\"127.0.0.1:%d\"]\n  realm: %s\n  quota_per_user: %d\n", port, realm, quota)
	}
	p1, p2 := testpeer.FreePort(t), testpeer.FreePort(t)
	n.write(n.doc("info", turnSec(p1, "portico", 20)))
	a := n.mustStart(Options{})
	defer a.Close()
	ctx := context.Background()
	if _, _, err := a.Replace(ctx, []byte(n.doc("info", turnSec(p1, "portico", 5))), "alice", "", 1); err != nil {
		t.Fatal(err)
	}
	if p := a.pending(); len(p) != 0 {
		t.Errorf("a quota change (live) is pending: %v", p)
	}
	if _, _, err := a.Replace(ctx, []byte(n.doc("info", turnSec(p2, "elsewhere", 5))), "alice", "", 2); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(a.pending(), ","); p != "turn.realm,turn.udp" {
		t.Errorf("pending_restart = %s, want turn.realm,turn.udp", p)
	}
}

// TestInvalidActiveVersionNamesTheWayOut: a stored version this build
// refuses (stored by an older build) stops the start with a message that
// says how to import a good file over it, and --force-import does.
func TestInvalidActiveVersionNamesTheWayOut(t *testing.T) {
	n := newNode(t)
	n.write(n.doc("info"))
	n.mustStart(Options{}).Close()
	st, err := sqlite.Open(context.Background(), filepath.Join(n.dir, "data", "portico.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutConfig(context.Background(), []byte(n.doc("info", "snmp: {rate_per_second: 0}\n")), "alice", "", 1); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if a, err := n.start(Options{}); err == nil {
		a.Close()
		t.Fatal("started on a version this build refuses")
	} else if !strings.Contains(err.Error(), "--force-import") || !strings.Contains(err.Error(), "snmp.rate_per_second") {
		t.Errorf("error %q does not name the field and the way out", err)
	}
	n.write(n.doc("warn"))
	a := n.mustStart(Options{ForceImport: true})
	a.Close()
}
