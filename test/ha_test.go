package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/store/storetest"
)

// clusterConfig is a two-node cluster's shared document: each node's part
// gives it its own management listener, and node.name says which node the
// file is written for.
func clusterConfig(self, mgmtA, mgmtB, level string) string {
	return fmt.Sprintf(`version: 1
node:
  name: %s
  drain_timeout: 5s
nodes:
  - name: a
    management_listen: %s
    priority: 150
  - name: b
    management_listen: %s
interfaces:
  external: {address: 127.0.0.1}
  internal: {address: 127.0.0.1, networks: [10.0.0.0/8]}
store:
  backend: postgres
management:
  listen: %s
log:
  level: %s
`, self, mgmtA, mgmtB, mgmtA, level)
}

// startNode serves cfg from dir as the cluster node called name
// (--node-name).
func startNode(t *testing.T, dir, cfg, mgmt, name string, env ...string) *daemon {
	t.Helper()
	via := []string{"sh", "-c", `exec "$@" --node-name ` + name, "sh"}
	return startDaemonVia(t, via, dir, cfg, mgmt, env...)
}

type nodeStatus struct {
	Node          string `json:"node"`
	ConfigVersion int64  `json:"config_version"`
	Config        struct {
		FileImport *struct{ State string } `json:"file_import"`
	} `json:"config"`
}

func statusOf(t *testing.T, c *apiClient) nodeStatus {
	t.Helper()
	var s nodeStatus
	c.must(200, "GET", "/api/v1/status", nil).json(t, &s)
	return s
}

// waitVersion waits until the node runs config version v.
func waitVersion(t *testing.T, c *apiClient, v int64) nodeStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := statusOf(t, c)
		if s.ConfigVersion == v {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s runs config version %d, want %d", s.Node, s.ConfigVersion, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClusterSharesOneConfig: two `portico serve` processes on one
// PostgreSQL run one stored document, each with its own part (here its
// management listener). A change through the API on either node is active
// on both and the next change on the other node names it without a 412;
// restarting a node with its unchanged --config does not revert it, and a
// changed file does not either (refused: an import is an explicit act).
func TestClusterSharesOneConfig(t *testing.T) {
	pg := storetest.StartPostgres(t)
	dsn := pg.NewDatabase(t, "cluster")
	env := []string{"PORTICO_STORE_DSN=" + dsn, "PORTICO_ADMIN_PASSWORD=" + adminPassword}
	mgmtA, mgmtB := freeAddr(t), freeAddr(t)
	dirA, dirB := t.TempDir(), t.TempDir()

	// Node a names itself in its file; node b runs the very same file and
	// says which node it is with --node-name.
	fileA := clusterConfig("a", mgmtA, mgmtB, "info")
	a := startDaemon(t, dirA, fileA, mgmtA, env...)
	b := startNode(t, dirB, fileA, mgmtB, "b", env...)
	login := func(d *daemon) *apiClient {
		c := newClient(t, d.url)
		c.csrf = true
		c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
		return c
	}
	ca, cb := login(a), login(b)
	if s := waitVersion(t, ca, 1); s.Node != "a" {
		t.Errorf("node a calls itself %q", s.Node)
	}
	if s := waitVersion(t, cb, 1); s.Node != "b" || s.Config.FileImport == nil || s.Config.FileImport.State != "unchanged" {
		t.Errorf("node b: %+v", s)
	}

	// A change through node b's API is active on node a.
	doc := string(cb.must(200, "GET", "/api/v1/config", nil, "Accept", "application/yaml").body)
	debug := strings.Replace(doc, "level: info", "level: debug", 1)
	if debug == doc {
		t.Fatalf("no log level in the stored document:\n%s", doc)
	}
	cb.must(200, "PUT", "/api/v1/config", debug, "If-Match", `"1"`)
	waitVersion(t, ca, 2)
	r := ca.must(200, "GET", "/api/v1/config", nil, "Accept", "application/yaml")
	if et := r.header.Get("ETag"); et != `"2"` || !strings.Contains(string(r.body), "level: debug") {
		t.Fatalf("node a after node b's change: ETag %s\n%s", et, r.body)
	}
	// Node a's next change names version 2: no 412.
	warn := strings.Replace(string(r.body), "level: debug", "level: warn", 1)
	ca.must(200, "PUT", "/api/v1/config", warn, "If-Match", `"2"`)
	waitVersion(t, cb, 3)

	// Node b restarts with its unchanged file: version 3 stays.
	b.stop()
	b = startNode(t, dirB, fileA, mgmtB, "b", env...)
	cb = login(b)
	if s := waitVersion(t, cb, 3); s.Config.FileImport == nil || s.Config.FileImport.State != "behind" {
		t.Errorf("node b restarted with its file: %+v", s)
	}
	// Node a restarts with a changed file: refused, version 3 stays.
	a.stop()
	a = startDaemon(t, dirA, clusterConfig("a", mgmtA, mgmtB, "error"), mgmtA, env...)
	ca = login(a)
	if s := waitVersion(t, ca, 3); s.Config.FileImport == nil || s.Config.FileImport.State != "refused" {
		t.Errorf("node a restarted with a changed file: %+v", s)
	}
	var vs []struct{ Version int64 }
	cb.must(200, "GET", "/api/v1/config/versions", nil).json(t, &vs)
	if len(vs) != 3 {
		t.Errorf("config versions after the restarts: %+v", vs)
	}
	for _, d := range []*daemon{a, b} {
		if err := d.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if out := d.out.String(); strings.Contains(out, "does not run on this node") {
			t.Errorf("a node could not run the shared document:\n%s", out)
		}
	}
}
