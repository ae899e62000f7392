package test

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestOpsMetrics: /metrics carries the build information with the node's
// name, a gauge per readiness check, the certificates' expiry, the media
// port pools and a histogram of management request durations.
func TestOpsMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	mgmt := freeAddr(t)
	base := 20000 + 2*(testpeer.FreePort(t)%10000)
	cfg := baseConfig(mgmt) + fmt.Sprintf("media:\n  enabled: true\n  external: {port_min: %d, port_max: %d}\n  internal: {port_min: %d, port_max: %d}\n", base, base+99, base+100, base+199)
	d := startDaemon(t, t.TempDir(), cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	for range 3 {
		resp, err := insecureClient(nil).Get(d.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := insecureClient(nil).Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	value := func(re string) float64 {
		t.Helper()
		g := regexp.MustCompile(`(?m)^` + re + ` (\S+)$`).FindStringSubmatch(m)
		if g == nil {
			t.Errorf("no %s in /metrics", re)
			return 0
		}
		v, _ := strconv.ParseFloat(g[1], 64)
		return v
	}
	if v := value(`portico_build_info\{commit="[^"]+",go="go[^"]+",node="test-node",version="[^"]+"\}`); v != 1 {
		t.Errorf("portico_build_info %v", v)
	}
	if v := value(`portico_ready_check\{check="store"\}`); v != 1 {
		t.Errorf("store check %v", v)
	}
	if v := value(`portico_certificate_expiry_seconds\{name="management-self-signed"\}`); v < 86400 {
		t.Errorf("management certificate expires in %v s", v)
	}
	if v := value(`portico_http_request_duration_seconds_count\{area="health",method="GET"\}`); v < 3 {
		t.Errorf("%v health requests observed, want at least 3", v)
	}
	free := value(`portico_media_port_pairs\{interface="external",state="free"\}`)
	total := value(`portico_media_port_pairs\{interface="external",state="total"\}`)
	if total != 50 || free != total {
		t.Errorf("external port pairs free %v of %v; want all 50 free", free, total)
	}
	if v := value(`portico_history_spool_pending`); v != 0 {
		t.Errorf("history spool depth %v", v)
	}

	// The routes the OS uses for each side, checked against openapi.json.
	raw, _ := os.ReadFile("../internal/api/openapi.json")
	oc := newOpenAPIChecker(t, raw)
	c := newClient(t, d.url)
	c.record = func(method, path string, code int, body []byte) { oc.check(t, method, path, code, body) }
	c.csrf = true
	c.must(401, "GET", "/api/v1/system/routes", nil)
	c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	var rt struct {
		Interfaces []struct {
			Interface, Link string
			Routes          []struct{ Destination, Table string }
		}
	}
	c.must(200, "GET", "/api/v1/system/routes", nil).json(t, &rt)
	if len(rt.Interfaces) != 3 {
		t.Fatalf("routes of %d sides, want 3: %+v", len(rt.Interfaces), rt)
	}
	for _, side := range rt.Interfaces {
		found := false
		for _, r := range side.Routes {
			found = found || (r.Destination == "127.0.0.0/8" && r.Table == "local")
		}
		if side.Link != "lo" || !found {
			t.Errorf("%s on 127.0.0.1: link %q, routes %+v; want lo with 127.0.0.0/8 (local)", side.Interface, side.Link, side.Routes)
		}
	}
}
