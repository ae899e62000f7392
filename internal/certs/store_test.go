package certs_test

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/certs"
	"github.com/portico-edge/portico/internal/certs/certtest"
	"software.sslmate.com/src/go-pkcs12"
)

func TestImportValidation(t *testing.T) {
	root := certtest.NewCA(t, "Root")
	inter := root.Intermediate(t, "Intermediate")
	good := inter.Issue(t, []string{"portal.example.test"}, certtest.Options{}, inter, root)
	other := root.Issue(t, []string{"other.example.test"}, certtest.Options{})
	rsa1024 := root.Issue(t, []string{"weak.example.test"}, certtest.Options{RSABits: 1024})
	p224 := root.Issue(t, []string{"weak.example.test"}, certtest.Options{Curve: elliptic.P224()})
	rsaGood := root.Issue(t, []string{"rsa.example.test"}, certtest.Options{RSABits: 2048})
	expired := root.Issue(t, []string{"old.example.test"}, certtest.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	// Chain out of order: root first, then leaf, then intermediate, then key.
	shuffled := append(append(append(root.PEM(), good.CertPEM[:bytes.Index(good.CertPEM[1:], []byte("-----BEGIN"))+1]...), inter.PEM()...), good.KeyPEM...)
	// Wrong intermediate: leaf issued by inter, chain claims another CA with the same name.
	fakeInter := root.Intermediate(t, "Intermediate")
	badChainLeaf := inter.Issue(t, []string{"x.example.test"}, certtest.Options{})
	badChain := append(badChainLeaf.CertPEM, fakeInter.PEM()...)

	tests := []struct {
		name    string
		data    []byte
		key     []byte
		wantErr error
	}{
		{name: "pem chain and key in one blob", data: append(append([]byte{}, good.CertPEM...), good.KeyPEM...)},
		{name: "pem separate key", data: good.CertPEM, key: good.KeyPEM},
		{name: "chain in any order", data: shuffled},
		{name: "rsa 2048", data: rsaGood.CertPEM, key: rsaGood.KeyPEM},
		{name: "no key", data: good.CertPEM, wantErr: certs.ErrNoKey},
		{name: "key mismatch", data: good.CertPEM, key: other.KeyPEM, wantErr: certs.ErrKeyMismatch},
		{name: "rsa 1024 refused", data: rsa1024.CertPEM, key: rsa1024.KeyPEM, wantErr: certs.ErrWeakKey},
		{name: "p224 refused", data: p224.CertPEM, key: p224.KeyPEM, wantErr: certs.ErrWeakKey},
		{name: "expired refused", data: expired.CertPEM, key: expired.KeyPEM, wantErr: certs.ErrExpired},
		{name: "broken chain refused", data: badChain, key: badChainLeaf.KeyPEM, wantErr: certs.ErrBadChain},
		{name: "garbage", data: []byte("not a certificate"), wantErr: certs.ErrBadPassword},
		{name: "pem without certificate", data: good.KeyPEM, wantErr: certs.ErrNoCertificate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := certs.NewStore(certs.Options{})
			_, err := s.Import(context.Background(), "c", tc.data, tc.key, "")
			if tc.wantErr == nil && err != nil {
				t.Fatalf("import: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("import err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestWeakSignatureRefused imports a leaf signed with ECDSA-SHA1.
func TestWeakSignatureRefused(t *testing.T) {
	root := certtest.NewCA(t, "Root")
	leaf := root.Issue(t, []string{"sha1.example.test"}, certtest.Options{})
	tmpl := *leaf.Cert
	tmpl.SignatureAlgorithm = x509.ECDSAWithSHA1
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, root.Cert, leaf.Key.Public(), root.Key)
	if err != nil {
		t.Fatalf("create SHA-1 certificate: %v", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s := certs.NewStore(certs.Options{})
	_, err = s.Import(context.Background(), "sha1", certPEM, leaf.KeyPEM, "")
	if !errors.Is(err, certs.ErrWeakSignature) {
		t.Fatalf("import SHA-1 cert: err = %v, want ErrWeakSignature", err)
	}
}

func TestPKCS12(t *testing.T) {
	root := certtest.NewCA(t, "Root")
	inter := root.Intermediate(t, "Intermediate")
	leaf := inter.Issue(t, []string{"p12.example.test"}, certtest.Options{})
	pfx, err := pkcs12.Modern.Encode(leaf.Key, leaf.Cert, []*x509.Certificate{inter.Cert, root.Cert}, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	s := certs.NewStore(certs.Options{})
	if _, err := s.Import(context.Background(), "p12", pfx, nil, "wrong"); !errors.Is(err, certs.ErrBadPassword) {
		t.Fatalf("wrong password: err = %v", err)
	}
	info, err := s.Import(context.Background(), "p12", pfx, nil, "s3cret")
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if info.ChainLength != 3 {
		t.Fatalf("chain length = %d, want 3", info.ChainLength)
	}
	tc, err := s.Certificate("p12")
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := x509.ParseCertificate(tc.Certificate[1])
	if c1.Subject.CommonName != "Intermediate" {
		t.Fatalf("chain[1] = %s, want Intermediate", c1.Subject.CommonName)
	}
}

func TestUnusualNames(t *testing.T) {
	root := certtest.NewCA(t, "Root")
	leaf := root.Issue(t, []string{"a.example.test"}, certtest.Options{})
	names := []string{"portal (2024) — renewed.pfx", "../../etc/passwd", "C:\\certs\\my cert.p12", "ünïcødé 证书", "a'b\"c;d|e&f$g", ".hidden"}
	p := &certs.MemPersister{}
	s := certs.NewStore(certs.Options{Persister: p})
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			if _, err := s.Import(context.Background(), n, leaf.CertPEM, leaf.KeyPEM, ""); err != nil {
				t.Fatalf("import %q: %v", n, err)
			}
			f := certs.SafeFileName(n)
			if strings.ContainsAny(f, "/\\ ") || strings.HasPrefix(f, ".") || f == "" {
				t.Fatalf("SafeFileName(%q) = %q is not a safe path element", n, f)
			}
		})
	}
	for _, bad := range []string{"", "line\nbreak", strings.Repeat("x", 300)} {
		if _, err := s.Import(context.Background(), bad, leaf.CertPEM, leaf.KeyPEM, ""); !errors.Is(err, certs.ErrBadName) {
			t.Fatalf("name %q: err = %v, want ErrBadName", bad, err)
		}
	}
	// Reload from the persister into a fresh store.
	s2 := certs.NewStore(certs.Options{Persister: p})
	if err := s2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(s2.List()); got != len(names) {
		t.Fatalf("reloaded %d certificates, want %d", got, len(names))
	}
	if SafeA, SafeB := certs.SafeFileName("a/b"), certs.SafeFileName("a%2Fb"); SafeA == SafeB {
		t.Fatalf("SafeFileName collides: %q", SafeA)
	}
}

func TestSNISelection(t *testing.T) {
	root := certtest.NewCA(t, "Root")
	portal := root.Issue(t, []string{"portal.example.test"}, certtest.Options{})
	wild := root.Issue(t, []string{"*.example.test"}, certtest.Options{})
	def := root.Issue(t, []string{"default.test"}, certtest.Options{})
	s := certs.NewStore(certs.Options{})
	ctx := context.Background()
	for _, c := range []struct {
		n string
		l *certtest.Leaf
	}{{"default", def}, {"portal", portal}, {"wild", wild}} {
		if _, err := s.Import(ctx, c.n, c.l.CertPEM, c.l.KeyPEM, ""); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ sni, wantCN string }{
		{"portal.example.test", "portal.example.test"},
		{"PORTAL.example.test.", "portal.example.test"},
		{"ldap.example.test", "*.example.test"},
		{"a.b.example.test", "default.test"},
		{"", "default.test"},
		{"unknown.org", "default.test"},
	}
	for _, tc := range tests {
		t.Run(tc.sni, func(t *testing.T) {
			c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni})
			if err != nil {
				t.Fatal(err)
			}
			if c.Leaf.Subject.CommonName != tc.wantCN {
				t.Fatalf("sni %q served %q, want %q", tc.sni, c.Leaf.Subject.CommonName, tc.wantCN)
			}
		})
	}
	// Replacement under the same name is served from the next handshake.
	portal2 := root.Issue(t, []string{"portal.example.test"}, certtest.Options{})
	if _, err := s.Import(ctx, "portal", portal2.CertPEM, portal2.KeyPEM, ""); err != nil {
		t.Fatal(err)
	}
	c, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "portal.example.test"})
	if c.Leaf.SerialNumber.Cmp(portal2.Cert.SerialNumber) != 0 {
		t.Fatal("replacement not served")
	}
	if err := s.Delete(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Certificate("default"); !errors.Is(err, certs.ErrNotFound) {
		t.Fatalf("deleted certificate still served: %v", err)
	}
}

func TestCSR(t *testing.T) {
	csrPEM, keyPEM, err := certs.GenerateCSR(pkix.Name{CommonName: "portico.example.test", Organization: []string{"Example"}},
		[]string{"portico.example.test", "*.portico.example.test", "192.0.2.10", "admin@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(csrPEM)
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("csr signature: %v", err)
	}
	if csr.SignatureAlgorithm != x509.ECDSAWithSHA256 || csr.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("csr alg = %v/%v", csr.SignatureAlgorithm, csr.PublicKeyAlgorithm)
	}
	if len(csr.DNSNames) != 2 || len(csr.IPAddresses) != 1 || len(csr.EmailAddresses) != 1 {
		t.Fatalf("sans = %v %v %v", csr.DNSNames, csr.IPAddresses, csr.EmailAddresses)
	}
	if !bytes.Contains(keyPEM, []byte("PRIVATE KEY")) {
		t.Fatal("no key PEM")
	}
	if _, _, err := certs.GenerateCSR(pkix.Name{CommonName: "x"}, []string{"bad name!"}); err == nil {
		t.Fatal("invalid SAN accepted")
	}

	// Store flow: CSR, CA signs it, import the bare certificate under the same name.
	root := certtest.NewCA(t, "Root")
	p := &certs.MemPersister{}
	s := certs.NewStore(certs.Options{Persister: p})
	ctx := context.Background()
	csrPEM, err = s.CreateCSR(ctx, "edge cert #1", pkix.Name{CommonName: "edge.example.test"}, []string{"edge.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ = pem.Decode(csrPEM)
	csr, _ = x509.ParseCertificateRequest(blk.Bytes)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: csr.Subject, DNSNames: csr.DNSNames,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, csr.PublicKey, root.Key)
	if err != nil {
		t.Fatal(err)
	}
	signed := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// A fresh store loading the persisted pending key must accept it too.
	s2 := certs.NewStore(certs.Options{Persister: p})
	if err := s2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Import(ctx, "edge cert #1", signed, nil, ""); err != nil {
		t.Fatalf("import signed CSR certificate: %v", err)
	}
	if _, err := s.Import(ctx, "another name", signed, nil, ""); !errors.Is(err, certs.ErrNoKey) {
		t.Fatalf("import under a name with no pending key: err = %v, want ErrNoKey", err)
	}
}

func TestRootsEnforced(t *testing.T) {
	root := certtest.NewCA(t, "Root")
	otherRoot := certtest.NewCA(t, "Other")
	leaf := root.Issue(t, []string{"a.example.test"}, certtest.Options{})
	s := certs.NewStore(certs.Options{Roots: otherRoot.Pool()})
	if _, err := s.Import(context.Background(), "a", leaf.CertPEM, leaf.KeyPEM, ""); !errors.Is(err, certs.ErrBadChain) {
		t.Fatalf("untrusted root accepted: %v", err)
	}
	s = certs.NewStore(certs.Options{Roots: root.Pool()})
	if _, err := s.Import(context.Background(), "a", leaf.CertPEM, leaf.KeyPEM, ""); err != nil {
		t.Fatalf("trusted root refused: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	root := certtest.NewCA(f, "Root")
	leaf := root.Issue(f, []string{"a.example.test"}, certtest.Options{})
	f.Add(append(append([]byte{}, leaf.CertPEM...), leaf.KeyPEM...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := certs.Parse(data, nil, "")
		if err == nil {
			_ = b.Validate(time.Now(), nil)
		}
	})
}
