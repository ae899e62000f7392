package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// managementCertName is the store's name for the self-signed management certificate.
const managementCertName = "management-self-signed"

// selfSigned makes an ECDSA P-256 certificate signed with SHA-256 for the
// management listener, valid for the node name, localhost and the listen IP.
func selfSigned(node string, ips []net.IP, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: node, Organization: []string{"Portico (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{node, "localhost"},
		IPAddresses:           append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...),
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// managementCert loads the configured certificate files, or the self-signed
// certificate kept in the store, making it at first start.
func managementCert(ctx context.Context, st store.Store, certFile, keyFile, node string, listenIP net.IP) (tls.Certificate, error) {
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return c, fmt.Errorf("management.cert_file: %w", err)
		}
		return c, nil
	}
	certs, err := st.Certificates(ctx)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read certificates: %w", err)
	}
	for _, c := range certs {
		if c.Name == managementCertName {
			return tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		}
	}
	var ips []net.IP
	if listenIP != nil && !listenIP.IsUnspecified() {
		ips = append(ips, listenIP)
	}
	cp, kp, err := selfSigned(node, ips, time.Now())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make self-signed certificate: %w", err)
	}
	if err := st.PutCertificate(ctx, store.Certificate{Name: managementCertName, CertPEM: cp, KeyPEM: kp, CreatedAt: time.Now().UTC()}); err != nil {
		return tls.Certificate{}, fmt.Errorf("store self-signed certificate: %w", err)
	}
	return tls.X509KeyPair(cp, kp)
}

// serverTLS is the management listener's TLS policy: 1.2 minimum and, for
// 1.2, only AEAD suites with forward secrecy (no RC4, 3DES or CBC).
func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
}
