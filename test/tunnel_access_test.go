package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// startSlapdIn runs OpenLDAP's slapd in ns on addr (plain LDAP: the access
// proxy secures the outside leg) with dc=example,dc=test holding alice,
// until the test ends.
func startSlapdIn(t *testing.T, ns *netnsPeer, addr string) {
	t.Helper()
	testpeer.Require(t, "slapd", "ldapadd", "ldapsearch")
	in := []string{"ip", "netns", "exec", ns.name}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "db"), 0o700)
	conf := filepath.Join(dir, "slapd.conf")
	os.WriteFile(conf, fmt.Appendf(nil, `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
database mdb
maxsize 16777216
suffix "dc=example,dc=test"
rootdn "cn=admin,dc=example,dc=test"
rootpw secret
directory %[1]s/db
access to * by * read
`, dir), 0o644)
	sl := exec.Command(in[0], append(in[1:], "slapd", "-d", "0", "-f", conf, "-h", "ldap://"+addr+"/")...)
	if err := sl.Start(); err != nil {
		t.Fatalf("slapd: %v", err)
	}
	t.Cleanup(func() {
		sl.Process.Kill()
		sl.Wait()
	})
	ldif := filepath.Join(dir, "base.ldif")
	os.WriteFile(ldif, []byte(`dn: dc=example,dc=test
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: uid=alice,dc=example,dc=test
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
telephoneNumber: +1 555 0100
`), 0o644)
	var out []byte
	var err error
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		out, err = exec.Command(in[0], append(in[1:], "ldapadd", "-x", "-H", "ldap://"+addr, "-D", "cn=admin,dc=example,dc=test", "-w", "secret", "-f", ldif)...).CombinedOutput()
		if err == nil {
			return
		}
	}
	t.Fatalf("load directory: %v\n%s", err, out)
}

// TestTunnelAccessProxy: the DMZ node's access proxy reaches slapd and
// nginx inside only through the tunnel: ldapsearch -ZZ (StartTLS with the
// proxy) finds alice, and curl over TLS gets nginx's page.
func TestTunnelAccessProxy(t *testing.T) {
	testpeer.Require(t, "nginx", "slapd", "ldapsearch", "nft", "curl")
	ns := newNetnsPeer(t)
	startNginxIn(t, ns, "127.0.0.1:8081")
	startSlapdIn(t, ns, "127.0.0.1:3890")

	ldapAddr, webAddr := freeAddr(t), freeAddr(t)
	apPort := testpeer.FreePort(t)
	cfg := baseConfig(freeAddr(t)) + fmt.Sprintf(`access_proxy:
  enabled: true
  listen: 127.0.0.1:%d
  routes:
    - name: web
      match: {sni: [web.inside.test]}
      action: http
      upstream: http://%s
    - name: directory
      action: ldap
      upstream: %s
      ldap: {upstream: none, read_only: true}
`, apPort, webAddr, ldapAddr)
	pair := startTunnelPair(t, ns, cfg,
		fmt.Sprintf("  - {name: web, proto: tcp, listen: %q}\n  - {name: ldap, proto: tcp, listen: %q}\n", webAddr, ldapAddr),
		"  - {name: web, proto: tcp, target: 127.0.0.1:8081}\n  - {name: ldap, proto: tcp, target: 127.0.0.1:3890}\n")
	waitFor(t, 30*time.Second, func() bool { state, _ := tunnelServices(t, pair.api); return state == "up" })

	out, err := exec.Command("curl", "-sk", "--max-time", "10", "--resolve", fmt.Sprintf("web.inside.test:%d:127.0.0.1", apPort),
		fmt.Sprintf("https://web.inside.test:%d/index.html", apPort)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "inside nginx") {
		t.Fatalf("curl through the access proxy and the tunnel: %v\n%s", err, out)
	}

	// The proxy's certificate is the node's self-signed default: the
	// search checks the path, not the certificate.
	home := t.TempDir()
	search := exec.Command("ldapsearch", "-x", "-ZZ", "-H", fmt.Sprintf("ldap://127.0.0.1:%d", apPort), "-b", "dc=example,dc=test", "(uid=alice)", "cn", "telephoneNumber")
	search.Env = append(os.Environ(), "LDAPTLS_REQCERT=never", "HOME="+home, "LDAPRC="+filepath.Join(home, "none"))
	out, err = search.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cn: Alice Liddell") || !strings.Contains(string(out), "telephoneNumber: +1 555 0100") {
		t.Fatalf("ldapsearch -ZZ through the access proxy and the tunnel: %v\n%s", err, out)
	}
	if _, flows := tunnelServices(t, pair.api); flows["web"] == 0 || flows["ldap"] == 0 {
		t.Errorf("tunnel flows %v", flows)
	}
}
