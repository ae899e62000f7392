package tunnel

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// State is what a tunnel end keeps across restarts: its own key and
// certificate, the fingerprints of the peers it pinned at enrollment and, on
// the server, the enrollment tokens it issued.
type State struct {
	CertPEM []byte   `json:"cert_pem,omitempty"`
	KeyPEM  []byte   `json:"key_pem,omitempty"`
	Peers   []string `json:"peers,omitempty"` // SHA-256 fingerprints, lowercase hex
	Tokens  []Token  `json:"tokens,omitempty"`
	// Replaces maps a peer fingerprint pinned by a rotation to the one it
	// replaces, until the peer connects with the new one or retires the
	// old one.
	Replaces map[string]string `json:"replaces,omitempty"`
}

// Token is an issued enrollment token as the server keeps it: only the
// SHA-256 of its secret is stored.
type Token struct {
	Hash    string    `json:"hash"`
	Expires time.Time `json:"expires"`
	Used    bool      `json:"used,omitempty"`
	UsedBy  string    `json:"used_by,omitempty"` // the fingerprint it enrolled
}

// StateStore loads and saves a State. Load of a store never saved returns
// the zero State.
type StateStore interface {
	Load() (State, error)
	Save(State) error
}

// FileState keeps the State in one JSON file, written with mode 0600 and
// replaced atomically (write, sync, rename).
type FileState struct {
	Path string
}

// Load reads the file; a missing file is the zero State.
func (f FileState) Load() (State, error) {
	var s State
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("tunnel: load state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("tunnel: load state %s: %w", f.Path, err)
	}
	return s, nil
}

// Save writes the file atomically.
func (f FileState) Save(s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("tunnel: save state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return fmt.Errorf("tunnel: save state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), ".tunnel-state-*")
	if err != nil {
		return fmt.Errorf("tunnel: save state: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.Path)
	}
	if err != nil {
		return fmt.Errorf("tunnel: save state: %w", err)
	}
	return nil
}

// MemState keeps the State in memory (tests, and nodes that re-enroll on
// every start).
type MemState struct {
	mu sync.Mutex
	s  State
}

// Load returns a copy of the kept State.
func (m *MemState) Load() (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneState(m.s), nil
}

// Save replaces the kept State.
func (m *MemState) Save(s State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s = cloneState(s)
	return nil
}

func cloneState(s State) State {
	s.Peers = slices.Clone(s.Peers)
	s.Tokens = slices.Clone(s.Tokens)
	s.Replaces = maps.Clone(s.Replaces)
	return s
}

// Fingerprint is the lowercase hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// identity returns the State's certificate, creating a self-signed ECDSA
// P-256 one (and storing it in s) when there is none.
func identity(s *State) (tls.Certificate, string, error) {
	if len(s.CertPEM) == 0 {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, "", fmt.Errorf("tunnel: identity: %w", err)
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		if err != nil {
			return tls.Certificate{}, "", fmt.Errorf("tunnel: identity: %w", err)
		}
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber: serial,
			Subject:      pkix.Name{CommonName: "portico-tunnel"},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.AddDate(20, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return tls.Certificate{}, "", fmt.Errorf("tunnel: identity: %w", err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return tls.Certificate{}, "", fmt.Errorf("tunnel: identity: %w", err)
		}
		s.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		s.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	cert, err := tls.X509KeyPair(s.CertPEM, s.KeyPEM)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("tunnel: identity: %w", err)
	}
	return cert, Fingerprint(cert.Certificate[0]), nil
}
