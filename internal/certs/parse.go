package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
	"unicode/utf8"

	"software.sslmate.com/src/go-pkcs12"
)

// MaxUploadSize caps the bytes one import accepts (a chain of a dozen
// certificates is a few tens of KiB).
const MaxUploadSize = 1 << 20

// MaxNameLen caps a certificate name (label) in bytes.
const MaxNameLen = 255

// Bundle is a parsed certificate: the leaf, the intermediates that follow it
// and the private key, before validation.
type Bundle struct {
	Leaf  *x509.Certificate
	Chain []*x509.Certificate // intermediates (and possibly the root), leaf excluded
	Key   crypto.Signer       // nil when the upload held no key
}

// ValidateName checks a certificate name. Names are labels only: any UTF-8
// text up to MaxNameLen bytes without control characters is accepted,
// including spaces, slashes, quotes, brackets and non-ASCII letters.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrBadName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadName, MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not UTF-8", ErrBadName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%w: control character %U", ErrBadName, r)
		}
	}
	return nil
}

// SafeFileName maps a certificate name to a string that is safe as one path
// element on any filesystem: letters, digits, '-', '_' and '.' are kept,
// every other byte becomes %XX, and a leading '.' is escaped too. The mapping
// is reversible, so two names never collide.
func SafeFileName(name string) string {
	var b []byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || (c == '.' && i > 0)
		if ok {
			b = append(b, c)
		} else {
			b = append(b, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&15])
		}
	}
	return string(b)
}

// Parse reads an upload: PEM (certificates and optionally a private key, in
// any order, as one blob) or PKCS#12 (DER; password may be empty). keyPEM,
// when not nil, is a separate PEM private key that overrides a key in data.
func Parse(data, keyPEM []byte, password string) (*Bundle, error) {
	if len(data) > MaxUploadSize || len(keyPEM) > MaxUploadSize {
		return nil, fmt.Errorf("certs: upload larger than %d bytes", MaxUploadSize)
	}
	var b *Bundle
	var err error
	if looksPEM(data) {
		b, err = parsePEM(data)
	} else {
		b, err = parsePKCS12(data, password)
	}
	if err != nil {
		return nil, err
	}
	if len(keyPEM) > 0 {
		k, err := parsePEMKey(keyPEM)
		if err != nil {
			return nil, err
		}
		b.Key = k
	}
	return b, nil
}

func looksPEM(data []byte) bool {
	return bytes.Contains(data, []byte("-----BEGIN "))
}

func parsePEM(data []byte) (*Bundle, error) {
	var certs []*x509.Certificate
	var key crypto.Signer
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certs: parse certificate %d: %w", len(certs)+1, err)
			}
			certs = append(certs, c)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			k, err := parseKeyDER(blk.Type, blk.Bytes)
			if err != nil {
				return nil, err
			}
			key = k
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("certs: encrypted PEM keys are not supported; upload PKCS#12 or an unencrypted key")
		}
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificate
	}
	return orderChain(certs, key), nil
}

func parsePEMKey(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, ErrNoKey
		}
		switch blk.Type {
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			return parseKeyDER(blk.Type, blk.Bytes)
		}
	}
}

func parseKeyDER(typ string, der []byte) (crypto.Signer, error) {
	var k any
	var err error
	switch typ {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(der)
	default:
		k, err = x509.ParsePKCS8PrivateKey(der)
	}
	if err != nil {
		return nil, fmt.Errorf("certs: parse private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: unsupported private key type %T", ErrWeakKey, k)
	}
	return s, nil
}

func parsePKCS12(data []byte, password string) (*Bundle, error) {
	key, leaf, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPassword, err)
	}
	if leaf == nil {
		return nil, ErrNoCertificate
	}
	var s crypto.Signer
	if key != nil {
		var ok bool
		if s, ok = key.(crypto.Signer); !ok {
			return nil, fmt.Errorf("%w: unsupported private key type %T", ErrWeakKey, key)
		}
	}
	return orderChain(append([]*x509.Certificate{leaf}, cas...), s), nil
}

// orderChain picks the leaf (the certificate matching the key, else the one
// that signs no other in the upload) and orders the rest issuer by issuer,
// so uploads with the chain in any order work.
func orderChain(certs []*x509.Certificate, key crypto.Signer) *Bundle {
	leafIdx := -1
	if key != nil {
		for i, c := range certs {
			if publicKeyEqual(c.PublicKey, key.Public()) {
				leafIdx = i
				break
			}
		}
	}
	if leafIdx < 0 {
		for i, c := range certs {
			signsOther := false
			for j, o := range certs {
				if i != j && bytes.Equal(o.RawIssuer, c.RawSubject) && o.CheckSignatureFrom(c) == nil {
					signsOther = true
					break
				}
			}
			if !signsOther {
				leafIdx = i
				break
			}
		}
	}
	if leafIdx < 0 {
		leafIdx = 0
	}
	b := &Bundle{Leaf: certs[leafIdx], Key: key}
	used := make([]bool, len(certs))
	used[leafIdx] = true
	cur := b.Leaf
	for {
		next := -1
		for j, o := range certs {
			if !used[j] && bytes.Equal(cur.RawIssuer, o.RawSubject) {
				next = j
				break
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		b.Chain = append(b.Chain, certs[next])
		cur = certs[next]
	}
	for j, c := range certs { // unrelated extras go last; Validate rejects them
		if !used[j] {
			b.Chain = append(b.Chain, c)
		}
	}
	return b
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if e, ok := a.(equaler); ok {
		return e.Equal(b)
	}
	return false
}

// Validate checks the bundle: a key is present and matches the leaf, the
// leaf is valid at now, every certificate links to the next by issuer and
// signature, no certificate (other than a self-signed root's own signature)
// uses less than SHA-256, and no key is weak (RSA < 2048 bits, ECDSA below
// P-256). roots, when not nil, must also anchor the chain.
func (b *Bundle) Validate(now time.Time, roots *x509.CertPool) error {
	if b.Key == nil {
		return ErrNoKey
	}
	if !publicKeyEqual(b.Leaf.PublicKey, b.Key.Public()) {
		return ErrKeyMismatch
	}
	if now.Before(b.Leaf.NotBefore) || now.After(b.Leaf.NotAfter) {
		return fmt.Errorf("%w: valid %s to %s", ErrExpired, b.Leaf.NotBefore.Format(time.RFC3339), b.Leaf.NotAfter.Format(time.RFC3339))
	}
	all := append([]*x509.Certificate{b.Leaf}, b.Chain...)
	for i, c := range all {
		if err := checkKey(c.PublicKey); err != nil {
			return fmt.Errorf("certificate %d (%s): %w", i, c.Subject.CommonName, err)
		}
		selfSigned := bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
		if !selfSigned || i == 0 {
			if weakSignature(c.SignatureAlgorithm) {
				return fmt.Errorf("%w: certificate %d (%s) signed with %s", ErrWeakSignature, i, c.Subject.CommonName, c.SignatureAlgorithm)
			}
		}
		if i+1 < len(all) {
			if err := c.CheckSignatureFrom(all[i+1]); err != nil {
				return fmt.Errorf("%w: certificate %d (%s) not signed by certificate %d (%s): %v", ErrBadChain, i, c.Subject.CommonName, i+1, all[i+1].Subject.CommonName, err)
			}
		}
	}
	if roots != nil {
		inter := x509.NewCertPool()
		for _, c := range b.Chain {
			inter.AddCert(c)
		}
		if _, err := b.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fmt.Errorf("%w: %v", ErrBadChain, err)
		}
	}
	return nil
}

func weakSignature(a x509.SignatureAlgorithm) bool {
	switch a {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512, x509.PureEd25519:
		return false
	}
	return true
}

func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA %d bits (minimum 2048)", ErrWeakKey, k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("%w: ECDSA curve %s", ErrWeakKey, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: key type %T", ErrWeakKey, pub)
	}
	return nil
}

// TLSCertificate builds the tls.Certificate served for the bundle (leaf then chain).
func (b *Bundle) TLSCertificate() *tls.Certificate {
	tc := &tls.Certificate{PrivateKey: b.Key, Leaf: b.Leaf}
	tc.Certificate = append(tc.Certificate, b.Leaf.Raw)
	for _, c := range b.Chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

// PEM returns the chain (leaf first) and the key as PEM.
func (b *Bundle) PEM() (certPEM, keyPEM []byte, err error) {
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Leaf.Raw})
	for _, c := range b.Chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if b.Key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(b.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("certs: marshal key: %w", err)
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	return certPEM, keyPEM, nil
}
