package turn

import (
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestTLSListenerRefusesCBC checks the TURN TLS listener's policy against a
// client that offers only the named suites at TLS 1.2: CBC suites are
// refused in the handshake, AEAD suites with forward secrecy are accepted.
func TestTLSListenerRefusesCBC(t *testing.T) {
	s := runServer(t, testConfig())
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
	tests := []struct {
		name   string
		suites []uint16
		ok     bool
	}{
		{"ecdhe cbc sha", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}, false},
		{"ecdhe cbc sha256", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}, false},
		{"aes gcm", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
		{"chacha20", []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &net.Dialer{Timeout: 5 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{
				InsecureSkipVerify: true, // only the negotiated suite matters here
				MinVersion:         tls.VersionTLS12,
				MaxVersion:         tls.VersionTLS12,
				CipherSuites:       tc.suites,
			})
			if err == nil {
				defer c.Close()
			}
			if got := err == nil; got != tc.ok {
				t.Fatalf("handshake with %v: err = %v, want success %v", tc.suites, err, tc.ok)
			}
		})
	}
	if cfg := s.TLSConfig(); len(cfg.CipherSuites) == 0 {
		t.Error("TLSConfig for the 443 demultiplexer has no suite list (Go's defaults include CBC)")
	}
}
