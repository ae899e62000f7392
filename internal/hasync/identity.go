package hasync

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// identity is the TLS identity both nodes derive from the shared secret:
// an Ed25519 key (HKDF-SHA256 of the secret) and a self-signed certificate
// for it. Each end presents it and accepts only a peer whose certificate
// carries the same public key; TLS 1.3's CertificateVerify proves that the
// peer holds the private key, hence the secret. Go's crypto/tls has no
// external pre-shared keys, so this is how a shared secret becomes mutual
// TLS 1.3 authentication without a certificate authority.
type identity struct {
	cert tls.Certificate
	pub  ed25519.PublicKey
}

// FlowSecret derives, from the ha.sync secret, the key both nodes' SIP
// edges sign their flow tokens with (sipedge.Deps.FlowSecret), so that a
// flow token one node put in a Path is read by the other after a failover.
func FlowSecret(secret []byte) []byte {
	k, err := hkdf.Key(sha256.New, secret, []byte("portico ha sync"), "sip flow tokens v1", 32)
	if err != nil {
		panic(err) // only for a length over 255*32 bytes
	}
	return k
}

func newIdentity(secret []byte) (*identity, error) {
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("hasync: secret of %d bytes; at least %d are required", len(secret), MinSecret)
	}
	seed, err := hkdf.Key(sha256.New, secret, []byte("portico ha sync"), "ed25519 identity v1", ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("hasync: derive key: %w", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "portico-ha-sync"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("hasync: certificate: %w", err)
	}
	return &identity{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pub: key.Public().(ed25519.PublicKey)}, nil
}

// verify accepts only the certificate of the same public key.
func (id *identity) verify(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) != 1 {
		return fmt.Errorf("%w: %d certificates", ErrPeer, len(raw))
	}
	c, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPeer, err)
	}
	pub, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok || !bytes.Equal(pub, id.pub) {
		return fmt.Errorf("%w: another secret", ErrPeer)
	}
	return nil
}

func (id *identity) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{id.cert},
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: id.verify,
		NextProtos:            []string{"portico-ha-sync/1"},
	}
}

func (id *identity) clientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.cert},
		// The chain is checked by verify against the derived key, not
		// against a certificate authority or a host name.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: id.verify,
		NextProtos:            []string{"portico-ha-sync/1"},
	}
}
