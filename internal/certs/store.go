// Package certs holds Portico's named TLS certificates: it imports PEM and
// PKCS#12 (RFC 7292) uploads with their chains, validates them (key match,
// chain linkage, SHA-256 or better signatures, RSA ≥ 2048 / ECDSA ≥ P-256),
// selects one per TLS handshake by SNI (RFC 6066 §3), generates PKCS#10
// certificate signing requests (RFC 2986) and swaps certificates live:
// tls.Config.GetCertificate reads the current set on every handshake, so a
// replacement applies to new connections while established ones keep theirs.
//
// Certificate names are labels chosen by the administrator; any printable
// text is accepted and names are never used as file paths (see SafeFileName
// for a persister that wants one).
package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Persister saves and loads certificates; the store package implements it.
// certPEM is the chain, leaf first. An empty certPEM with a keyPEM is a
// pending CSR key waiting for its signed certificate.
type Persister interface {
	SaveCertificate(ctx context.Context, name string, certPEM, keyPEM []byte) error
	DeleteCertificate(ctx context.Context, name string) error
	LoadCertificates(ctx context.Context) ([]Stored, error)
}

// Stored is one persisted certificate.
type Stored struct {
	Name    string
	CertPEM []byte
	KeyPEM  []byte
}

// Options configure a Store.
type Options struct {
	// Persister saves imports; nil keeps certificates in memory only.
	Persister Persister
	// Roots, when set, must anchor every imported chain; nil checks only
	// that the uploaded chain links up (private CAs often upload no root).
	Roots *x509.CertPool
	// Logger gets import and selection events; nil discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Info describes a stored certificate for listings.
type Info struct {
	Name        string    `json:"name"`
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	DNSNames    []string  `json:"dns_names"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	SHA256      string    `json:"sha256"`
	ChainLength int       `json:"chain_length"`
	KeyType     string    `json:"key_type"`
	Default     bool      `json:"default"`
}

type entry struct {
	name   string
	bundle *Bundle
	tls    *tls.Certificate
	info   Info
	seq    uint64
}

type snapshot struct {
	byName      map[string]*entry
	defaultName string
}

// Store is the set of named certificates. It is safe for concurrent use;
// readers (handshakes) never block on writers.
type Store struct {
	opts    Options
	log     *slog.Logger
	cur     atomic.Pointer[snapshot]
	mu      sync.Mutex // serialises writers
	seq     uint64
	pending map[string][]byte // CSR keys (PEM) by name
}

// NewStore returns an empty store.
func NewStore(opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{opts: opts, log: log.With("component", "certs"), pending: map[string][]byte{}}
	s.cur.Store(&snapshot{byName: map[string]*entry{}})
	return s
}

// Load reads every certificate from the persister. Entries that no longer
// validate (expired, weak) are logged and skipped, not fatal.
func (s *Store) Load(ctx context.Context) error {
	if s.opts.Persister == nil {
		return nil
	}
	list, err := s.opts.Persister.LoadCertificates(ctx)
	if err != nil {
		return fmt.Errorf("certs: load: %w", err)
	}
	for _, st := range list {
		if len(st.CertPEM) == 0 {
			s.mu.Lock()
			s.pending[st.Name] = st.KeyPEM
			s.mu.Unlock()
			continue
		}
		b, err := Parse(st.CertPEM, st.KeyPEM, "")
		if err == nil {
			err = b.Validate(s.opts.Now(), s.opts.Roots)
		}
		if err != nil {
			s.log.Warn("stored certificate skipped", "name", st.Name, "err", err)
			continue
		}
		s.put(st.Name, b)
	}
	return nil
}

// Import parses (PEM or PKCS#12), validates and stores a certificate under
// name, replacing any with that name, and persists it. keyPEM may be nil
// when data holds the key or a CSR made by CreateCSR is pending for name.
func (s *Store) Import(ctx context.Context, name string, data, keyPEM []byte, password string) (Info, error) {
	if err := ValidateName(name); err != nil {
		return Info{}, err
	}
	b, err := Parse(data, keyPEM, password)
	if err != nil {
		return Info{}, err
	}
	usedPending := false
	if b.Key == nil {
		s.mu.Lock()
		pk := s.pending[name]
		s.mu.Unlock()
		if pk != nil {
			if b.Key, err = parsePEMKey(pk); err != nil {
				return Info{}, err
			}
			usedPending = true
		}
	}
	if err := b.Validate(s.opts.Now(), s.opts.Roots); err != nil {
		return Info{}, err
	}
	if s.opts.Persister != nil {
		certPEM, kp, err := b.PEM()
		if err != nil {
			return Info{}, err
		}
		if err := s.opts.Persister.SaveCertificate(ctx, name, certPEM, kp); err != nil {
			return Info{}, fmt.Errorf("certs: save %q: %w", name, err)
		}
	}
	if usedPending {
		s.mu.Lock()
		delete(s.pending, name)
		s.mu.Unlock()
	}
	e := s.put(name, b)
	s.log.Info("certificate imported", "name", name, "subject", e.info.Subject, "not_after", e.info.NotAfter)
	return e.info, nil
}

func (s *Store) put(name string, b *Bundle) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	e := &entry{name: name, bundle: b, tls: b.TLSCertificate(), seq: s.seq}
	sum := sha256.Sum256(b.Leaf.Raw)
	e.info = Info{
		Name: name, Subject: b.Leaf.Subject.String(), Issuer: b.Leaf.Issuer.String(),
		DNSNames: b.Leaf.DNSNames, NotBefore: b.Leaf.NotBefore, NotAfter: b.Leaf.NotAfter,
		SHA256: hex.EncodeToString(sum[:]), ChainLength: 1 + len(b.Chain), KeyType: keyType(b.Leaf),
	}
	old := s.cur.Load()
	next := &snapshot{byName: make(map[string]*entry, len(old.byName)+1), defaultName: old.defaultName}
	for k, v := range old.byName {
		next.byName[k] = v
	}
	next.byName[name] = e
	if next.defaultName == "" {
		next.defaultName = name
	}
	s.cur.Store(next)
	return e
}

func keyType(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	default:
		return c.PublicKeyAlgorithm.String()
	}
}

// Delete removes a certificate (and any pending CSR key) by name.
func (s *Store) Delete(ctx context.Context, name string) error {
	if s.opts.Persister != nil {
		if err := s.opts.Persister.DeleteCertificate(ctx, name); err != nil {
			return fmt.Errorf("certs: delete %q: %w", name, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, name)
	old := s.cur.Load()
	if _, ok := old.byName[name]; !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	next := &snapshot{byName: map[string]*entry{}, defaultName: old.defaultName}
	for k, v := range old.byName {
		if k != name {
			next.byName[k] = v
		}
	}
	if next.defaultName == name {
		next.defaultName = ""
		for _, n := range sortedNames(next.byName) {
			next.defaultName = n
			break
		}
	}
	s.cur.Store(next)
	return nil
}

// SetDefault names the certificate served when no SNI name matches.
func (s *Store) SetDefault(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	if _, ok := old.byName[name]; !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	next := &snapshot{byName: old.byName, defaultName: name}
	s.cur.Store(next)
	return nil
}

// List describes every stored certificate, sorted by name.
func (s *Store) List() []Info {
	snap := s.cur.Load()
	out := make([]Info, 0, len(snap.byName))
	for _, n := range sortedNames(snap.byName) {
		in := snap.byName[n].info
		in.Default = n == snap.defaultName
		out = append(out, in)
	}
	return out
}

func sortedNames(m map[string]*entry) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Certificate returns the named certificate for serving.
func (s *Store) Certificate(name string) (*tls.Certificate, error) {
	e, ok := s.cur.Load().byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return e.tls, nil
}

// GetCertificate selects a certificate for a handshake (use it as
// tls.Config.GetCertificate): an exact DNS name match on the SNI name first,
// then a wildcard match, then the default certificate. Among several
// matches the one the client supports (signature schemes, curves) and that
// expires last wins.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.Select(hello, "")
}

// Select is GetCertificate with a preferred certificate name: when name is
// not empty and stored, that certificate is served whatever the SNI.
func (s *Store) Select(hello *tls.ClientHelloInfo, name string) (*tls.Certificate, error) {
	snap := s.cur.Load()
	if name != "" {
		if e, ok := snap.byName[name]; ok {
			return e.tls, nil
		}
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	sni := ""
	if hello != nil {
		sni = strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	}
	if sni != "" {
		if e := best(snap, hello, func(e *entry) bool { return matchesExact(e.bundle.Leaf, sni) }); e != nil {
			return e.tls, nil
		}
		if e := best(snap, hello, func(e *entry) bool { return matchesWildcard(e.bundle.Leaf, sni) }); e != nil {
			return e.tls, nil
		}
	}
	if e, ok := snap.byName[snap.defaultName]; ok {
		return e.tls, nil
	}
	return nil, fmt.Errorf("%w: no certificate for %q and no default", ErrNotFound, sni)
}

func best(snap *snapshot, hello *tls.ClientHelloInfo, match func(*entry) bool) *entry {
	var found []*entry
	for _, e := range snap.byName {
		if match(e) {
			found = append(found, e)
		}
	}
	if len(found) == 0 {
		return nil
	}
	sort.Slice(found, func(i, j int) bool {
		if !found[i].info.NotAfter.Equal(found[j].info.NotAfter) {
			return found[i].info.NotAfter.After(found[j].info.NotAfter)
		}
		return found[i].seq > found[j].seq
	})
	if hello != nil {
		for _, e := range found {
			if hello.SupportsCertificate(e.tls) == nil {
				return e
			}
		}
	}
	return found[0]
}

func matchesExact(c *x509.Certificate, host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		for _, a := range c.IPAddresses {
			if a.Equal(ip) {
				return true
			}
		}
		return false
	}
	for _, n := range c.DNSNames {
		if strings.EqualFold(n, host) {
			return true
		}
	}
	return false
}

func matchesWildcard(c *x509.Certificate, host string) bool {
	dot := strings.IndexByte(host, '.')
	if dot <= 0 {
		return false
	}
	for _, n := range c.DNSNames {
		if strings.HasPrefix(n, "*.") && strings.EqualFold(n[1:], host[dot:]) {
			return true
		}
	}
	return false
}

// GenerateCSR makes an ECDSA P-256 key and a PKCS#10 request signed with
// ECDSA-SHA256 for subject and the SANs (each a DNS name, IP address,
// e-mail address or URI). Both are returned as PEM.
func GenerateCSR(subject pkix.Name, sans []string) (csrPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate key: %w", err)
	}
	tmpl := &x509.CertificateRequest{Subject: subject, SignatureAlgorithm: x509.ECDSAWithSHA256}
	for _, s := range sans {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case net.ParseIP(s) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(s))
		case strings.Contains(s, "://"):
			u, err := url.Parse(s)
			if err != nil {
				return nil, nil, fmt.Errorf("certs: csr san %q: %w", s, err)
			}
			tmpl.URIs = append(tmpl.URIs, u)
		case strings.Contains(s, "@"):
			if _, err := mail.ParseAddress(s); err != nil {
				return nil, nil, fmt.Errorf("certs: csr san %q: %w", s, err)
			}
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, s)
		default:
			if !validDNSName(s) {
				return nil, nil, fmt.Errorf("certs: csr san %q: not a DNS name", s)
			}
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: create csr: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

func validDNSName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for i, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "*" && i == 0 {
			continue
		}
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// CreateCSR generates a CSR for name and keeps its key pending (and
// persisted), so the signed certificate can later be imported under the
// same name without a key.
func (s *Store) CreateCSR(ctx context.Context, name string, subject pkix.Name, sans []string) ([]byte, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	csr, key, err := GenerateCSR(subject, sans)
	if err != nil {
		return nil, err
	}
	if s.opts.Persister != nil {
		if err := s.opts.Persister.SaveCertificate(ctx, name, nil, key); err != nil {
			return nil, fmt.Errorf("certs: save csr key %q: %w", name, err)
		}
	}
	s.mu.Lock()
	s.pending[name] = key
	s.mu.Unlock()
	return csr, nil
}

// MemPersister keeps certificates in memory (tests, and runs without a store).
type MemPersister struct {
	mu sync.Mutex
	m  map[string]Stored
}

var _ Persister = (*MemPersister)(nil)

// SaveCertificate implements Persister.
func (p *MemPersister) SaveCertificate(_ context.Context, name string, certPEM, keyPEM []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]Stored{}
	}
	p.m[name] = Stored{Name: name, CertPEM: append([]byte(nil), certPEM...), KeyPEM: append([]byte(nil), keyPEM...)}
	return nil
}

// DeleteCertificate implements Persister.
func (p *MemPersister) DeleteCertificate(_ context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, name)
	return nil
}

// LoadCertificates implements Persister.
func (p *MemPersister) LoadCertificates(context.Context) ([]Stored, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Stored, 0, len(p.m))
	for _, v := range p.m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
