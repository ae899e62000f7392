package app

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/config"
)

// haSection is an ha section with one IPv4 group on eth0; interval is the
// group's advertisement interval.
func haSection(interval string) string {
	return `ha:
  enabled: true
  interface: eth0
  groups:
    - vrid: 51
      addresses: [192.0.2.100]
      peers: [192.0.2.1, 192.0.2.2]
      interval: ` + interval + "\n"
}

// TestHASectionRefusedWithFieldErrors: an ha section the speaker cannot
// run is refused with the field at fault.
func TestHASectionRefusedWithFieldErrors(t *testing.T) {
	tests := []struct{ name, section, path string }{
		{"no interface", strings.Replace(haSection("100ms"), "  interface: eth0\n", "", 1), "ha.interface"},
		{"interval", haSection("105ms"), "ha.groups[0].interval"},
		{"ipv6 peer not link-local", strings.NewReplacer("192.0.2.100", "2001:db8::100", "192.0.2.1,", "2001:db8::1,", "192.0.2.2]", "2001:db8::2]").Replace(haSection("1s")), "ha.groups[0].peers[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			err := Validate(context.Background(), []byte(n.doc("info", tc.section)))
			es, _ := config.AsErrors(err)
			if len(es) == 0 || es[0].Path != tc.path {
				t.Errorf("got %v, want an error at %s", err, tc.path)
			}
		})
	}
}

// TestHAReload: a change of the ha section is stored and listed in
// pending_restart (the speaker runs what it started with); a bad section
// is refused and the running configuration stays.
func TestHAReload(t *testing.T) {
	n := newNode(t)
	n.write(n.doc("info", haSection("100ms")))
	a := n.mustStart(Options{})
	defer a.Close()
	ctx := context.Background()
	v, _, err := a.Replace(ctx, []byte(n.doc("info", haSection("200ms"))), "alice", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if p := a.pending(); !slices.ContainsFunc(p, func(f string) bool { return strings.HasPrefix(f, "ha.groups") }) {
		t.Errorf("pending_restart = %v, want the ha groups", p)
	}
	if _, _, err := a.Replace(ctx, []byte(n.doc("info", strings.Replace(haSection("200ms"), "vrid: 51", "vrid: 0", 1))), "alice", "", v.Version); err == nil {
		t.Fatal("vrid 0 accepted")
	}
	if r := a.cur.Load(); r.version.Version != v.Version || r.cfg.HA.Groups[0].VRID != 51 {
		t.Errorf("a refused change replaced the running configuration: version %d, vrid %d", r.version.Version, r.cfg.HA.Groups[0].VRID)
	}
}

// TestCheckVIPBinds: a node whose services bind a VIP refuses to start
// while the kernel would refuse the bind as backup.
func TestCheckVIPBinds(t *testing.T) {
	cfg, err := config.Parse([]byte("version: 1\nnode: {name: n1}\ninterfaces: {external: {address: 192.0.2.100}, internal: {address: 127.0.0.1}}\n" + haSection("1s")))
	if err != nil {
		t.Fatal(err)
	}
	sysctl := func(v string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if p != nonlocalBind {
				return nil, fs.ErrNotExist
			}
			return []byte(v + "\n"), nil
		}
	}
	if err := checkVIPBinds(cfg, sysctl("0")); err == nil || !strings.Contains(err.Error(), "192.0.2.100 (group 51)") {
		t.Errorf("ip_nonlocal_bind 0: %v", err)
	}
	if err := checkVIPBinds(cfg, sysctl("1")); err != nil {
		t.Errorf("ip_nonlocal_bind 1: %v", err)
	}
	cfg.Interfaces.External.Address = "192.0.2.1"
	if err := checkVIPBinds(cfg, sysctl("0")); err != nil {
		t.Errorf("no VIP bound: %v", err)
	}
	cfg.Interfaces.External.Address = "192.0.2.100"
	if err := checkVIPBinds(cfg, func(string) ([]byte, error) { return nil, errors.New("no /proc") }); err == nil {
		t.Error("an unreadable sysctl let a VIP bind through")
	}
	// An IPv6 VIP bound: the IPv6 sysctl decides.
	cfg6, err := config.Parse([]byte("version: 1\nnode: {name: n1}\ninterfaces: {external: {address: \"2001:db8::100\"}, internal: {address: 127.0.0.1}}\n" +
		strings.NewReplacer("192.0.2.100", "2001:db8::100", "192.0.2.1,", "fe80::1,", "192.0.2.2]", "fe80::2]").Replace(haSection("1s"))))
	if err != nil {
		t.Fatal(err)
	}
	sysctl6 := func(v4, v6 string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			return []byte(map[string]string{nonlocalBind: v4, nonlocalBind6: v6}[p] + "\n"), nil
		}
	}
	if err := checkVIPBinds(cfg6, sysctl6("1", "0")); err == nil || !strings.Contains(err.Error(), "net.ipv6.ip_nonlocal_bind=1") || !strings.Contains(err.Error(), "2001:db8::100 (group 51)") {
		t.Errorf("ipv6 ip_nonlocal_bind 0: %v", err)
	}
	if err := checkVIPBinds(cfg6, sysctl6("0", "1")); err != nil {
		t.Errorf("ipv6 ip_nonlocal_bind 1: %v", err)
	}
}

// TestClusterAPI: GET /api/v1/cluster shows the node's groups (here not
// running: App.Run starts the speaker) and POST /api/v1/cluster/handback
// says the speaker does not run; with ha off the cluster has no groups
// and hand-back is 404.
func TestClusterAPI(t *testing.T) {
	a, err := startTestApp(t, haSection("100ms"), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	do := apiClient(t, a)
	w := do("GET", "/api/v1/cluster", "", "")
	var c struct {
		HA     bool   `json:"ha"`
		Node   string `json:"node"`
		Groups []struct {
			VRID  int      `json:"vrid"`
			State string   `json:"state"`
			VIPs  []string `json:"vips"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if !c.HA || len(c.Groups) != 1 || c.Groups[0].VRID != 51 || c.Groups[0].State != "initialize" || c.Groups[0].VIPs[0] != "192.0.2.100" {
		t.Errorf("cluster: %s", w.Body)
	}
	if w := do("POST", "/api/v1/cluster/handback", "application/json", "{}"); w.Code != http.StatusConflict {
		t.Errorf("hand-back without a speaker: %d %s", w.Code, w.Body)
	}
	off, do2 := newTestApp(t)
	_ = off
	if w := do2("POST", "/api/v1/cluster/handback", "application/json", "{}"); w.Code != http.StatusNotFound {
		t.Errorf("hand-back with ha off: %d %s", w.Code, w.Body)
	}
	if w := do2("GET", "/api/v1/cluster", "", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"ha": false`) {
		t.Errorf("cluster with ha off: %d %s", w.Code, w.Body)
	}
}
