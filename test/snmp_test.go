package test

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/snmp"
	"github.com/portico-edge/portico/internal/testpeer"
)

const (
	snmpAuthKey = "daemon-auth-key-1"
	snmpPrivKey = "daemon-priv-key-1"
)

// snmpTool runs a net-snmp tool with no MIBs and no user configuration,
// one try with a one-second timeout.
func snmpTool(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	path := testpeer.Require(t, tool)[0]
	home := t.TempDir()
	cmd := exec.Command(path, append([]string{"-r", "0", "-t", "1", "-On", "-m", ""}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "SNMPCONFPATH="+home, "SNMP_PERSISTENT_DIR="+home, "MIBS=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSNMP: a running `portico serve` answers net-snmp's snmpget, snmpwalk
// and snmpbulkwalk over v2c and v3 authPriv (SHA-256, AES-128) with its
// own state, refuses a wrong community and wrong credentials, masks the
// SNMP secrets in the API's configuration, takes a change live, and sends snmptrapd a v2c and
// a v3 trap for a console lockout and for its management certificate
// (valid five years, inside certificate_warn_days of ten).
func TestSNMP(t *testing.T) {
	testpeer.Require(t, "snmpget", "snmpwalk", "snmpbulkwalk", "snmptrapd")
	dir := t.TempDir()
	mgmt := freeAddr(t)
	agent := freeAddr(t)
	trapd := testpeer.StartSnmptrapd(t, fmt.Sprintf("authCommunity log trap-community\ncreateUser -e 0x%s monitor SHA-256 %s AES %s\nauthUser log monitor priv\n",
		hex.EncodeToString(snmp.DefaultEngineID("test-node")), snmpAuthKey, snmpPrivKey))
	cfg := baseConfig(mgmt) + fmt.Sprintf(`snmp:
  enabled: true
  listen: [%q]
  location: test rack
  certificate_warn_days: 3650
  communities:
    - {community: ro-community-1, networks: [127.0.0.0/8]}
  users:
    - {name: monitor, auth_key: %s, priv_key: %s}
  traps:
    - {address: %q, community: trap-community}
    - {address: %q, version: v3, user: monitor}
`, agent, snmpAuthKey, snmpPrivKey, trapd.Addr, trapd.Addr)
	d := startDaemon(t, dir, cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)

	v2c := []string{"-v2c", "-c", "ro-community-1"}
	v3 := []string{"-v3", "-l", "authPriv", "-u", "monitor", "-a", "SHA-256", "-A", snmpAuthKey, "-x", "AES", "-X", snmpPrivKey}
	for name, sec := range map[string][]string{"v2c": v2c, "v3": v3} {
		t.Run(name, func(t *testing.T) {
			out, err := snmpTool(t, "snmpget", append(sec, agent, ".1.3.6.1.2.1.1.5.0", ".1.3.6.1.2.1.1.6.0", ".1.3.6.1.4.1.99999.1.1.5.0")...)
			if err != nil {
				t.Fatalf("snmpget: %v\n%s", err, out)
			}
			for _, want := range []string{`= STRING: "test-node"`, `= STRING: "test rack"`, ".1.3.6.1.4.1.99999.1.1.5.0 = INTEGER: 1"} {
				if !strings.Contains(out, want) {
					t.Errorf("snmpget lacks %q:\n%s", want, out)
				}
			}
			out, err = snmpTool(t, "snmpwalk", append(sec, agent, ".1.3.6.1.4.1.99999.1")...)
			if err != nil {
				t.Fatalf("snmpwalk: %v\n%s", err, out)
			}
			// The readiness checks (store, the snmp service itself) and the
			// management certificate come from the running node.
			for _, want := range []string{`STRING: "store"`, `STRING: "snmp"`, `STRING: "management-self-signed"`, `.1.3.6.1.4.1.99999.1.1.1.0 = STRING: "test-node"`} {
				if !strings.Contains(out, want) {
					t.Errorf("snmpwalk lacks %q:\n%s", want, out)
				}
			}
			out, err = snmpTool(t, "snmpbulkwalk", append(sec, agent, ".1.3.6.1.2.1.2.2.1.2")...)
			if err != nil || !strings.Contains(out, `STRING: "lo"`) {
				t.Errorf("snmpbulkwalk ifDescr: %v\n%s", err, out)
			}
		})
	}
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"wrong community", "Timeout", []string{"-v2c", "-c", "public"}},
		{"wrong auth key", "Authentication failure", []string{"-v3", "-l", "authPriv", "-u", "monitor", "-a", "SHA-256", "-A", "wrong-key-123", "-x", "AES", "-X", snmpPrivKey}},
		{"unknown user", "Unknown user name", []string{"-v3", "-l", "authPriv", "-u", "nobody", "-a", "SHA-256", "-A", snmpAuthKey, "-x", "AES", "-X", snmpPrivKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := snmpTool(t, "snmpget", append(tc.args, agent, ".1.3.6.1.2.1.1.5.0")...)
			if err == nil || strings.Contains(out, "test-node") || !strings.Contains(out, tc.want) {
				t.Errorf("snmpget = %v, want refused with %q:\n%s", err, tc.want, out)
			}
		})
	}

	admin := newClient(t, d.url)
	admin.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	doc := string(admin.must(200, "GET", "/api/v1/config", nil, "Accept", "application/yaml").body)
	for _, secret := range []string{"ro-community-1", snmpAuthKey, snmpPrivKey, "trap-community"} {
		if strings.Contains(doc, secret) {
			t.Errorf("GET /api/v1/config shows %s", secret)
		}
	}
	metrics := string(admin.must(200, "GET", "/metrics", nil).body)
	for _, want := range []string{`portico_snmp_refused_total{reason="community"} 1`, `portico_snmp_refused_total{reason="wrong_digest"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A change written back with the masked secrets applies live: the
	// stored community and keys stay, the new location shows at once.
	r := admin.must(200, "GET", "/api/v1/config", nil, "Accept", "application/yaml")
	edited := strings.Replace(string(r.body), "location: test rack", "location: second rack", 1)
	admin.csrf = true
	admin.must(200, "PUT", "/api/v1/config", []byte(edited), "If-Match", r.header.Get("ETag"))
	var status struct {
		PendingRestart []string `json:"pending_restart"`
	}
	admin.must(200, "GET", "/api/v1/status", nil).json(t, &status)
	if len(status.PendingRestart) != 0 {
		t.Errorf("pending_restart after an snmp change: %v", status.PendingRestart)
	}
	out, err := snmpTool(t, "snmpget", append(v3, agent, ".1.3.6.1.2.1.1.6.0")...)
	if err != nil || !strings.Contains(out, `"second rack"`) {
		t.Errorf("after the live change: %v\n%s", err, out)
	}

	// max_login_failures is 3: the third failure locks the account.
	other := newClient(t, d.url)
	for range 3 {
		other.must(401, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": "not-the-password"})
	}
	lockout := ".1.3.6.1.4.1.99999.2.0.8"
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(trapd.Log(), lockout) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("snmptrapd did not get the lockout as a v2c and a v3 trap:\n%s\nportico:\n%s", trapd.Log(), d.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(trapd.Log(), "account admin locked") {
		t.Errorf("the trap does not say which account:\n%s", trapd.Log())
	}
	if n := strings.Count(trapd.Log(), ".1.3.6.1.4.1.99999.2.0.5"); n != 2 || !strings.Contains(trapd.Log(), "certificate management-self-signed expires in") {
		t.Errorf("certificateExpiring sent %d times, want once per receiver:\n%s", n, trapd.Log())
	}
}
