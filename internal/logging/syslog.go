package logging

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/portico-edge/portico/internal/config/field"
)

// SyslogSection is the log.syslog section: a remote syslog collector that
// receives every log record and the audit trail as RFC 5424 messages,
// besides the local output. The struct holds only comparable fields.
type SyslogSection struct {
	// Address is the collector's host:port. Empty (default): no remote syslog.
	Address string `yaml:"address" json:"address"`
	// Transport is udp (default, RFC 5426), tcp (octet-counted framing,
	// RFC 6587) or tls (RFC 5425, TLS 1.2 or later).
	Transport string `yaml:"transport" json:"transport"`
	// CAFile is a PEM bundle that verifies the collector's certificate (tls).
	// Empty: the system roots.
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// ServerName is the name the collector's certificate must carry (tls).
	// Empty: the host part of Address.
	ServerName string `yaml:"server_name" json:"server_name"`
	// CertFile and KeyFile are a client certificate for collectors that
	// require one (tls). Both or neither.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
	// Facility is the syslog facility name of log records: daemon, local0
	// (default) ... local7. The audit trail uses "authpriv" (facility 10).
	Facility string `yaml:"facility" json:"facility"`
	// Hostname is the HOSTNAME field. Empty (default): node.name.
	Hostname string `yaml:"hostname" json:"hostname"`
	// Level is the lowest log level sent: debug, info, warn or error.
	// Empty (default): the local log.level.
	Level string `yaml:"level" json:"level"`
	// NoAudit stops the audit trail from being sent. Default false: sent.
	NoAudit bool `yaml:"no_audit" json:"no_audit"`
	// QueueSize is how many records wait while the collector is slow or
	// unreachable; beyond it records are dropped and counted. Default 4096.
	QueueSize int `yaml:"queue_size" json:"queue_size"`
}

var facilities = map[string]int{
	"kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

const (
	auditFacility = 10 // authpriv
	// SDID is the SD-ID of the structured-data element that carries a
	// record's attributes. 32473 is the enterprise number RFC 5612 sets
	// aside for documentation and examples.
	SDID = "portico@32473"
	// maxUDP caps a datagram (RFC 5426 §3.2: receivers should take 2048).
	maxUDP = 2048
	// maxStream caps a record sent over TCP or TLS.
	maxStream = 16 << 10
	// defaultQueue is QueueSize's default.
	defaultQueue = 4096
	maxBackoff   = 30 * time.Second
	minBackoff   = 200 * time.Millisecond
	dialTimeout  = 5 * time.Second
	writeTimeout = 10 * time.Second
)

// Validate checks the section on its own.
func (s SyslogSection) Validate() error {
	var es field.Errors
	const p = "log.syslog"
	if s.Address == "" {
		return nil
	}
	es.HostPort(p+".address", s.Address)
	switch s.Transport {
	case "", "udp", "tcp", "tls":
	default:
		es.Add(p+".transport", "%q is not a transport (udp, tcp or tls)", s.Transport)
	}
	if s.Transport != "tls" && (s.CAFile != "" || s.CertFile != "" || s.ServerName != "") {
		es.Add(p+".transport", "ca_file, cert_file and server_name need transport tls")
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		es.Add(p+".cert_file", "cert_file and key_file must be given together")
	}
	if _, ok := facilities[s.facility()]; !ok {
		es.Add(p+".facility", "%q is not a facility (daemon, local0 ... local7)", s.Facility)
	}
	if s.Level != "" {
		if err := SetLevel(new(slog.LevelVar), s.Level); err != nil {
			es.Add(p+".level", "%q is not a level (debug, info, warn, error)", s.Level)
		}
	}
	if s.QueueSize < 0 || s.QueueSize > 1<<20 {
		es.Add(p+".queue_size", "%d is outside 0..1048576", s.QueueSize)
	}
	if s.Hostname != "" && !printable(s.Hostname, 255) {
		es.Add(p+".hostname", "%q is not 1..255 printable ASCII characters", s.Hostname)
	}
	return es.Err()
}

func (s SyslogSection) facility() string {
	if s.Facility == "" {
		return "local0"
	}
	return s.Facility
}

func printable(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// Syslog sends records to a remote collector. Send never blocks: records
// go into a bounded queue that one goroutine drains; when the queue is
// full a record is dropped and counted. The goroutine connects on demand,
// and after a failure waits (200 ms doubling to 30 s) before it dials
// again; the record whose write failed is sent again on the new connection
// once, then dropped. Close stops the goroutine and waits for it; records
// still queued are sent if the connection is up, for at most a second.
type Syslog struct {
	cfg      SyslogSection
	host     string
	facility int
	tls      *tls.Config
	dial     func(ctx context.Context) (net.Conn, error)

	q      chan []byte
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once

	sent, dropped, failures atomic.Uint64
	level                   slog.LevelVar
	ownLevel                bool
}

// NewSyslog checks cfg, loads the TLS material and returns the sink; Start
// runs it. host is the HOSTNAME used when cfg.Hostname is empty.
func NewSyslog(cfg SyslogSection, host string) (*Syslog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Address == "" {
		return nil, errors.New("log.syslog.address: empty")
	}
	if cfg.Transport == "" {
		cfg.Transport = "udp"
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = defaultQueue
	}
	if cfg.Hostname != "" {
		host = cfg.Hostname
	}
	if !printable(host, 255) {
		host = "-"
	}
	s := &Syslog{cfg: cfg, host: host, facility: facilities[cfg.facility()],
		q: make(chan []byte, cfg.QueueSize), stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.Level != "" {
		SetLevel(&s.level, cfg.Level)
		s.ownLevel = true
	}
	if cfg.Transport == "tls" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(cfg.Address)
		}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("log.syslog.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("log.syslog.ca_file: %s holds no PEM certificate", cfg.CAFile)
			}
		}
		if cfg.CertFile != "" {
			c, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("log.syslog.cert_file: %w", err)
			}
			tc.Certificates = []tls.Certificate{c}
		}
		s.tls = tc
	}
	d := &net.Dialer{Timeout: dialTimeout}
	switch cfg.Transport {
	case "udp":
		s.dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "udp", cfg.Address) }
	case "tcp":
		s.dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", cfg.Address) }
	case "tls":
		td := &tls.Dialer{NetDialer: d, Config: s.tls}
		s.dial = func(ctx context.Context) (net.Conn, error) { return td.DialContext(ctx, "tcp", cfg.Address) }
	}
	return s, nil
}

// Start runs the sending goroutine; Close stops it.
func (s *Syslog) Start() { go s.run() }

// Stats are the sink's counters.
type SyslogStats struct {
	Sent, Dropped, Failures uint64
	Queued                  int
}

// Stats returns the counters: records sent, dropped (queue full or write
// failed twice), connection failures, and records waiting.
func (s *Syslog) Stats() SyslogStats {
	return SyslogStats{Sent: s.sent.Load(), Dropped: s.dropped.Load(), Failures: s.failures.Load(), Queued: len(s.q)}
}

// Close stops the sink, sending what is queued for at most a second.
// Safe to call twice.
func (s *Syslog) Close() error {
	s.closed.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

func (s *Syslog) enqueue(msg []byte) {
	select {
	case <-s.stop:
		s.dropped.Add(1)
		return
	default:
	}
	select {
	case s.q <- msg:
	default:
		s.dropped.Add(1)
	}
}

func (s *Syslog) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			// Give the queue a second to drain, then abandon dials and writes.
			t := time.NewTimer(time.Second)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-ctx.Done():
			}
		case <-ctx.Done():
		}
	}()
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	backoff := time.Duration(0)
	for {
		var msg []byte
		select {
		case msg = <-s.q:
		case <-s.stop:
			select {
			case msg = <-s.q:
			default:
				return
			}
		}
		for attempt := 0; ; attempt++ {
			if conn == nil {
				if backoff > 0 && !s.sleep(ctx, backoff) {
					s.dropped.Add(1 + uint64(len(s.q)))
					return
				}
				c, err := s.dial(ctx)
				if err != nil {
					s.failures.Add(1)
					backoff = nextBackoff(backoff)
					if ctx.Err() != nil {
						s.dropped.Add(1 + uint64(len(s.q)))
						return
					}
					continue
				}
				conn = c
			}
			conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, err := conn.Write(s.frame(msg))
			if err == nil {
				s.sent.Add(1)
				backoff = 0
				break
			}
			s.failures.Add(1)
			conn.Close()
			conn = nil
			backoff = nextBackoff(backoff)
			if attempt >= 1 || ctx.Err() != nil {
				s.dropped.Add(1)
				break
			}
		}
	}
}

func (s *Syslog) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return minBackoff
	}
	return min(2*d, maxBackoff)
}

// frame returns msg as it goes on the wire: one datagram (cut to 2048
// bytes) over UDP, "LEN SP MSG" over TCP and TLS (RFC 6587 §3.4.1,
// RFC 5425 §4.3).
func (s *Syslog) frame(msg []byte) []byte {
	if s.cfg.Transport == "udp" {
		if len(msg) > maxUDP {
			msg = msg[:maxUDP]
		}
		return msg
	}
	if len(msg) > maxStream {
		msg = msg[:maxStream]
	}
	b := make([]byte, 0, len(msg)+8)
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ' ')
	return append(b, msg...)
}

// Audit sends one audit-trail entry (facility authpriv, severity notice,
// MSGID "audit") unless the section turned the audit trail off. s may be nil.
func (s *Syslog) Audit(t time.Time, user, source, action, target, detail string) {
	if s == nil || s.cfg.NoAudit {
		return
	}
	params := []sdParam{{"user", user}, {"source", source}, {"action", action}, {"target", target}}
	if detail != "" {
		params = append(params, sdParam{"detail", detail})
	}
	msg := fmt.Sprintf("%s %s %s", user, action, target)
	s.enqueue(appendRecord(nil, auditFacility*8+5, t, s.host, "audit", params, msg))
}

type sdParam struct{ name, value string }

// appendRecord formats one RFC 5424 message:
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG.
func appendRecord(b []byte, pri int, t time.Time, host, msgid string, params []sdParam, msg string) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(pri), 10)
	b = append(b, ">1 "...)
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, host...)
	b = append(b, " portico "...)
	b = strconv.AppendInt(b, int64(os.Getpid()), 10)
	b = append(b, ' ')
	b = append(b, headerField(msgid, 32)...)
	b = append(b, ' ')
	if len(params) == 0 {
		b = append(b, '-')
	} else {
		b = append(b, '[')
		b = append(b, SDID...)
		for _, p := range params {
			b = append(b, ' ')
			b = append(b, paramName(p.name)...)
			b = append(b, `="`...)
			b = appendParamValue(b, redact(p.name, p.value))
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if msg != "" {
		b = append(b, ' ')
		b = append(b, strings.ToValidUTF8(msg, "\uFFFD")...)
	}
	return b
}

// headerField makes s a valid header field: printable ASCII, at most max
// characters, "-" when empty.
func headerField(s string, max int) string {
	if s == "" {
		return "-"
	}
	out := []byte(s)
	if len(out) > max {
		out = out[:max]
	}
	for i, c := range out {
		if c < 33 || c > 126 {
			out[i] = '_'
		}
	}
	return string(out)
}

// paramName makes a PARAM-NAME: 1..32 printable ASCII without '=', ' ',
// ']' or '"' (RFC 5424 §6.3.3).
func paramName(s string) string {
	out := []byte(headerField(s, 32))
	for i, c := range out {
		if c == '=' || c == ']' || c == '"' {
			out[i] = '_'
		}
	}
	return string(out)
}

// appendParamValue escapes '"', '\' and ']' (RFC 5424 §6.3.3) and keeps
// the value valid UTF-8.
func appendParamValue(b []byte, v string) []byte {
	for _, r := range strings.ToValidUTF8(v, "\uFFFD") {
		if r == '"' || r == '\\' || r == ']' {
			b = append(b, '\\')
		}
		b = utf8.AppendRune(b, r)
	}
	return b
}

// secretWords are parts of attribute names whose values never leave the
// node: a record that carries one (by mistake or in a config document)
// has it replaced by "***".
var secretWords = []string{"password", "passwd", "secret", "token", "dsn", "credential", "authorization", "cookie", "private"}

func redact(name, value string) string {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return "***"
		}
	}
	return value
}

// severity maps a slog level to a syslog severity.
func severity(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

// syslogHandler is the slog.Handler that formats records for a Syslog.
// MSGID is the record's component; every other attribute (groups joined
// with ".") is an SD-PARAM.
type syslogHandler struct {
	s      *Syslog
	min    slog.Leveler
	attrs  []sdParam
	groups string
}

// Handler returns a slog.Handler sending to s; records below the
// section's level (or local, when the section gives none) are skipped.
func (s *Syslog) Handler(local slog.Leveler) slog.Handler {
	min := local
	if s.ownLevel {
		min = &s.level
	}
	return &syslogHandler{s: s, min: min}
}

func (h *syslogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.min.Level()
}

func (h *syslogHandler) Handle(_ context.Context, r slog.Record) error {
	params := make([]sdParam, 0, len(h.attrs)+r.NumAttrs())
	params = append(params, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		params = appendAttr(params, h.groups, a)
		return true
	})
	msgid := "-"
	kept := params[:0]
	for _, p := range params {
		if p.name == "component" {
			msgid = p.value
			continue
		}
		kept = append(kept, p)
	}
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	h.s.enqueue(appendRecord(nil, h.s.facility*8+severity(r.Level), t, h.s.host, msgid, kept, r.Message))
	return nil
}

func appendAttr(ps []sdParam, prefix string, a slog.Attr) []sdParam {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return ps
	}
	if a.Value.Kind() == slog.KindGroup {
		p := a.Key
		if prefix != "" && p != "" {
			p = prefix + "." + p
		} else if p == "" {
			p = prefix
		}
		for _, g := range a.Value.Group() {
			ps = appendAttr(ps, p, g)
		}
		return ps
	}
	name := a.Key
	if prefix != "" {
		name = prefix + "." + name
	}
	// A later attribute of the same name replaces the earlier, as locally.
	for i := range ps {
		if ps[i].name == name {
			ps[i].value = a.Value.String()
			return ps
		}
	}
	return append(ps, sdParam{name, a.Value.String()})
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]sdParam(nil), h.attrs...)
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.groups, a)
	}
	return &n
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	if n.groups != "" {
		n.groups += "." + name
	} else {
		n.groups = name
	}
	return &n
}

// tee sends each record to both handlers.
type tee struct{ a, b slog.Handler }

func (t tee) Enabled(ctx context.Context, l slog.Level) bool {
	return t.a.Enabled(ctx, l) || t.b.Enabled(ctx, l)
}

func (t tee) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if t.a.Enabled(ctx, r.Level) {
		err = t.a.Handle(ctx, r.Clone())
	}
	if t.b.Enabled(ctx, r.Level) {
		if e := t.b.Handle(ctx, r); err == nil {
			err = e
		}
	}
	return err
}

func (t tee) WithAttrs(as []slog.Attr) slog.Handler {
	return tee{t.a.WithAttrs(as), t.b.WithAttrs(as)}
}

func (t tee) WithGroup(name string) slog.Handler {
	return tee{t.a.WithGroup(name), t.b.WithGroup(name)}
}
