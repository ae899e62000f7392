package accessproxy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/certs/certtest"
	"github.com/portico-edge/portico/internal/testpeer"
)

// startSlapd runs OpenLDAP's slapd with an mdb database for
// dc=example,dc=test loaded with two people, serving ldap:// (StartTLS) and
// ldaps:// with a certificate from its own inside CA.
func startSlapd(t *testing.T) (ldapAddr, ldapsAddr string, ca *certtest.CA) {
	t.Helper()
	testpeer.Require(t, "slapd", "ldapadd")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "db"), 0o700)
	ca = certtest.NewCA(t, "Directory CA")
	leaf := ca.Issue(t, []string{"directory.inside.test", "127.0.0.1"}, certtest.Options{})
	crt, key := leaf.WriteFiles(t, dir, "slapd")
	p1, p2 := testpeer.FreePort(t), testpeer.FreePort(t)
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
TLSCertificateFile %[2]s
TLSCertificateKeyFile %[3]s
database mdb
maxsize 16777216
suffix "dc=example,dc=test"
rootdn "cn=admin,dc=example,dc=test"
rootpw secret
directory %[1]s/db
access to * by * read
`, dir, crt, key)
	writeFile(t, filepath.Join(dir, "slapd.conf"), []byte(conf))
	ldapAddr, ldapsAddr = fmt.Sprintf("127.0.0.1:%d", p1), fmt.Sprintf("127.0.0.1:%d", p2)
	startProc(t, dir, "slapd", "-d", "0", "-f", filepath.Join(dir, "slapd.conf"),
		"-h", fmt.Sprintf("ldap://%s/ ldaps://%s/", ldapAddr, ldapsAddr))
	waitPort(t, ldapAddr)
	waitPort(t, ldapsAddr)
	ldif := `dn: dc=example,dc=test
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=People,dc=example,dc=test
objectClass: organizationalUnit
ou: People

dn: uid=alice,ou=People,dc=example,dc=test
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
telephoneNumber: +1 555 0100

dn: uid=bob,ou=People,dc=example,dc=test
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
`
	f := filepath.Join(dir, "base.ldif")
	writeFile(t, f, []byte(ldif))
	if out, err := run(t, nil, "ldapadd", "-x", "-H", "ldap://"+ldapAddr, "-D", "cn=admin,dc=example,dc=test", "-w", "secret", "-f", f); err != nil {
		t.Fatalf("load directory: %v\n%s", err, out)
	}
	return ldapAddr, ldapsAddr, ca
}

func TestLDAPProxySlapd(t *testing.T) {
	testpeer.Require(t, "slapd", "ldapsearch", "ldapmodify", "ldapadd")
	ldapAddr, ldapsAddr, dirCA := startSlapd(t)
	p := newPKI(t)
	// libldap checks the certificate against the name it reverse-resolves
	// for the connected address (often the machine's host name), so the
	// test certificate names that too.
	names := []string{"localhost", "127.0.0.1"}
	if hn, err := os.Hostname(); err == nil && hn != "" && hn != "localhost" {
		names = append(names, hn)
	}
	p.add(t, "directory", names)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, p.ca.PEM())

	// Two shared-port listeners: the first proxies to slapd's StartTLS port,
	// the second (read-write, for contrast) to its LDAPS port.
	l1, _ := net.Listen("tcp", "127.0.0.1:0")
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	cfg := Config{
		Listen:      l1.Addr().String(),
		ExtraListen: []string{l2.Addr().String()},
		Routes: []Route{
			{Name: "dir-ro", Match: Match{Listen: []string{l1.Addr().String()}}, Action: ActionLDAP, Upstream: ldapAddr,
				UpstreamTLS: UpstreamTLS{CA: string(dirCA.PEM())},
				LDAP:        LDAPOptions{Upstream: "starttls", ReadOnly: true, BaseDNs: []string{"ou=People,dc=example,dc=test"}}},
			{Name: "dir-rw", Match: Match{Listen: []string{l2.Addr().String()}}, Action: ActionLDAP, Upstream: ldapsAddr,
				UpstreamTLS: UpstreamTLS{CA: string(dirCA.PEM())},
				LDAP:        LDAPOptions{Upstream: "ldaps"}},
		},
	}
	l1.Close()
	l2.Close()
	s, err := New(cfg, Deps{Certs: p.store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, a := range []string{cfg.Listen, cfg.ExtraListen[0]} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		go s.ServeListen(t.Context(), l, a)
	}
	_, roPort, _ := net.SplitHostPort(cfg.Listen)
	_, rwPort, _ := net.SplitHostPort(cfg.ExtraListen[0])
	env := []string{"LDAPTLS_CACERT=" + caFile, "LDAPTLS_REQCERT=demand", "HOME=" + dir, "LDAPRC=" + filepath.Join(dir, "none")}

	t.Run("ldapsearch -ZZ (StartTLS to Portico, StartTLS to slapd)", func(t *testing.T) {
		out, err := run(t, env, "ldapsearch", "-x", "-ZZ", "-H", "ldap://localhost:"+roPort, "-b", "ou=People,dc=example,dc=test", "(uid=alice)", "cn", "telephoneNumber")
		if err != nil || !strings.Contains(out, "cn: Alice Liddell") || !strings.Contains(out, "telephoneNumber: +1 555 0100") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("ldaps:// to Portico, LDAPS to slapd", func(t *testing.T) {
		out, err := run(t, env, "ldapsearch", "-x", "-H", "ldaps://localhost:"+rwPort, "-b", "dc=example,dc=test", "(uid=bob)", "cn")
		if err != nil || !strings.Contains(out, "cn: Bob Builder") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("ldaps:// to the read-only listener too", func(t *testing.T) {
		out, err := run(t, env, "ldapsearch", "-x", "-H", "ldaps://localhost:"+roPort, "-b", "ou=People,dc=example,dc=test", "(uid=bob)", "cn")
		if err != nil || !strings.Contains(out, "cn: Bob Builder") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("plaintext search refused before StartTLS", func(t *testing.T) {
		out, err := run(t, env, "ldapsearch", "-x", "-H", "ldap://localhost:"+roPort, "-b", "ou=People,dc=example,dc=test", "(uid=alice)")
		if err == nil || strings.Contains(out, "Alice") || !strings.Contains(out, "Confidentiality required") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("search outside base DN refused", func(t *testing.T) {
		out, err := run(t, env, "ldapsearch", "-x", "-ZZ", "-H", "ldap://localhost:"+roPort, "-b", "dc=example,dc=test", "(objectClass=*)")
		if err == nil || !strings.Contains(out, "Insufficient access") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	modify := filepath.Join(dir, "modify.ldif")
	writeFile(t, modify, []byte("dn: uid=alice,ou=People,dc=example,dc=test\nchangetype: modify\nreplace: telephoneNumber\ntelephoneNumber: +1 555 0199\n"))
	add := filepath.Join(dir, "add.ldif")
	writeFile(t, add, []byte("dn: uid=mallory,ou=People,dc=example,dc=test\nobjectClass: inetOrgPerson\nuid: mallory\ncn: Mallory\nsn: M\n"))
	bind := []string{"-x", "-D", "cn=admin,dc=example,dc=test", "-w", "secret"}
	t.Run("writes refused when read-only", func(t *testing.T) {
		out, err := run(t, env, "ldapmodify", append(bind, "-ZZ", "-H", "ldap://localhost:"+roPort, "-f", modify)...)
		if err == nil || !strings.Contains(out, "Insufficient access (50)") {
			t.Fatalf("ldapmodify through read-only proxy: %v\n%s", err, out)
		}
		out, err = run(t, env, "ldapadd", append(bind, "-ZZ", "-H", "ldap://localhost:"+roPort, "-f", add)...)
		if err == nil || !strings.Contains(out, "Insufficient access (50)") {
			t.Fatalf("ldapadd through read-only proxy: %v\n%s", err, out)
		}
		// The directory itself still has the old value: the write never reached it.
		out, _ = run(t, env, "ldapsearch", "-x", "-H", "ldap://"+ldapAddr, "-b", "ou=People,dc=example,dc=test", "(uid=alice)", "telephoneNumber")
		if !strings.Contains(out, "+1 555 0100") {
			t.Fatalf("directory changed:\n%s", out)
		}
	})
	t.Run("writes pass the read-write route", func(t *testing.T) {
		out, err := run(t, env, "ldapmodify", append(bind, "-H", "ldaps://localhost:"+rwPort, "-f", modify)...)
		if err != nil {
			t.Fatalf("ldapmodify through read-write proxy: %v\n%s", err, out)
		}
		out, _ = run(t, env, "ldapsearch", "-x", "-H", "ldap://"+ldapAddr, "-b", "ou=People,dc=example,dc=test", "(uid=alice)", "telephoneNumber")
		if !strings.Contains(out, "+1 555 0199") {
			t.Fatalf("write did not reach the directory:\n%s", out)
		}
	})
}
