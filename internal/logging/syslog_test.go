package logging

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rfc5424 is one parsed message. The parser below is the test's own
// receiver side (no Go syslog server library is used): it follows the ABNF
// of RFC 5424 §6 strictly, so a record the sink formats wrongly fails it.
type rfc5424 struct {
	pri                      int
	version                  int
	timestamp                time.Time
	host, app, procid, msgid string
	sdid                     string
	params                   map[string]string
	msg                      string
}

func parseRFC5424(b []byte) (rfc5424, error) {
	var m rfc5424
	if len(b) < 4 || b[0] != '<' {
		return m, errors.New("no PRI")
	}
	end := bytes.IndexByte(b, '>')
	if end < 2 || end > 4 {
		return m, errors.New("bad PRI")
	}
	pri, err := strconv.Atoi(string(b[1:end]))
	if err != nil || pri > 191 {
		return m, fmt.Errorf("bad PRI %q", b[1:end])
	}
	m.pri = pri
	rest := b[end+1:]
	fields := make([]string, 0, 6)
	for range 6 {
		i := bytes.IndexByte(rest, ' ')
		if i <= 0 {
			return m, fmt.Errorf("header cut after %d fields", len(fields))
		}
		f := rest[:i]
		for _, c := range f {
			if c < 33 || c > 126 {
				return m, fmt.Errorf("header field %q not printable ASCII", f)
			}
		}
		fields = append(fields, string(f))
		rest = rest[i+1:]
	}
	if fields[0] != "1" {
		return m, fmt.Errorf("version %q", fields[0])
	}
	m.version = 1
	if m.timestamp, err = time.Parse(time.RFC3339Nano, fields[1]); err != nil {
		return m, err
	}
	for i, max := range []int{255, 48, 128, 32} {
		if len(fields[i+2]) > max {
			return m, fmt.Errorf("header field %q too long", fields[i+2])
		}
	}
	m.host, m.app, m.procid, m.msgid = fields[2], fields[3], fields[4], fields[5]
	m.params = map[string]string{}
	switch {
	case len(rest) > 0 && rest[0] == '-':
		rest = rest[1:]
	case len(rest) > 0 && rest[0] == '[':
		rest, err = parseSD(rest, &m)
		if err != nil {
			return m, err
		}
	default:
		return m, errors.New("no STRUCTURED-DATA")
	}
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return m, errors.New("no SP before MSG")
		}
		m.msg = string(bytes.TrimPrefix(rest[1:], []byte("\xEF\xBB\xBF")))
	}
	return m, nil
}

func parseSD(b []byte, m *rfc5424) ([]byte, error) {
	for len(b) > 0 && b[0] == '[' {
		b = b[1:]
		i := bytes.IndexAny(b, " ]")
		if i <= 0 || i > 32 {
			return nil, errors.New("bad SD-ID")
		}
		m.sdid = string(b[:i])
		b = b[i:]
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
			eq := bytes.IndexByte(b, '=')
			if eq <= 0 || eq > 32 || len(b) < eq+2 || b[eq+1] != '"' {
				return nil, errors.New("bad SD-PARAM")
			}
			name := string(b[:eq])
			if strings.ContainsAny(name, ` ="]`) {
				return nil, fmt.Errorf("bad PARAM-NAME %q", name)
			}
			b = b[eq+2:]
			var v []byte
			for {
				if len(b) == 0 {
					return nil, errors.New("PARAM-VALUE not closed")
				}
				c := b[0]
				b = b[1:]
				if c == '\\' && len(b) > 0 && (b[0] == '"' || b[0] == '\\' || b[0] == ']') {
					v = append(v, b[0])
					b = b[1:]
					continue
				}
				if c == '"' {
					break
				}
				if c == ']' {
					return nil, errors.New("unescaped ] in PARAM-VALUE")
				}
				v = append(v, c)
			}
			m.params[name] = string(v)
		}
		if len(b) == 0 || b[0] != ']' {
			return nil, errors.New("SD-ELEMENT not closed")
		}
		b = b[1:]
	}
	return b, nil
}

// readFramed reads one octet-counted message (RFC 6587 §3.4.1).
func readFramed(r *bufio.Reader) ([]byte, error) {
	n, err := r.ReadString(' ')
	if err != nil {
		return nil, err
	}
	l, err := strconv.Atoi(strings.TrimSuffix(n, " "))
	if err != nil || l <= 0 {
		return nil, fmt.Errorf("bad frame length %q", n)
	}
	b := make([]byte, l)
	_, err = io.ReadFull(r, b)
	return b, err
}

// receiver is a syslog collector written in this test: it accepts UDP,
// TCP or TLS and hands each message to recv.
type receiver struct {
	addr string
	recv chan []byte
}

func newReceiver(t *testing.T, transport string, tc *tls.Config) *receiver {
	t.Helper()
	r := &receiver{recv: make(chan []byte, 100)}
	if transport == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		r.addr = pc.LocalAddr().String()
		go func() {
			buf := make([]byte, 65536)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				r.recv <- append([]byte(nil), buf[:n]...)
			}
		}()
		return r
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	t.Cleanup(func() { ln.Close() })
	r.addr = ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				br := bufio.NewReader(c)
				for {
					b, err := readFramed(br)
					if err != nil {
						c.Close()
						return
					}
					r.recv <- b
				}
			}()
		}
	}()
	return r
}

func (r *receiver) next(t *testing.T) rfc5424 {
	t.Helper()
	select {
	case b := <-r.recv:
		m, err := parseRFC5424(b)
		if err != nil {
			t.Fatalf("not RFC 5424: %v: %q", err, b)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no syslog message received")
	}
	return rfc5424{}
}

// testCA writes a CA and a server certificate for 127.0.0.1 and
// "collector.test"; it returns the CA file and the server's TLS config.
func testCA(t *testing.T) (string, *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "collector.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"collector.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func TestSyslogTransports(t *testing.T) {
	caFile, serverTLS := testCA(t)
	for _, tc := range []struct {
		name, transport, server string
		tls                     *tls.Config
	}{
		{name: "udp", transport: "udp"},
		{name: "tcp", transport: "tcp"},
		{name: "tls", transport: "tls", tls: serverTLS, server: "collector.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t, tc.transport, tc.tls)
			sec := SyslogSection{Address: r.addr, Transport: tc.transport, Facility: "local3"}
			if tc.transport == "tls" {
				sec.CAFile, sec.ServerName = caFile, tc.server
			}
			var local bytes.Buffer
			l, err := New(Config{Level: "info", Stderr: &local, Syslog: sec, Hostname: "edge-1"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			log := Component(l.Logger, "sip")
			log.Warn("register refused", "source", "192.0.2.7:5060", "reason", `bad "realm" ]x\`, "password", "hunter2")
			log.Debug("not sent")
			m := r.next(t)
			if m.pri != 19*8+4 {
				t.Errorf("PRI %d, want local3.warning (%d)", m.pri, 19*8+4)
			}
			if m.host != "edge-1" || m.app != "portico" || m.msgid != "sip" || m.procid != strconv.Itoa(os.Getpid()) {
				t.Errorf("header %q %q %q %q", m.host, m.app, m.procid, m.msgid)
			}
			if time.Since(m.timestamp) > time.Minute || m.timestamp.After(time.Now().Add(time.Second)) {
				t.Errorf("timestamp %v", m.timestamp)
			}
			if m.sdid != SDID || m.params["source"] != "192.0.2.7:5060" || m.params["reason"] != `bad "realm" ]x\` {
				t.Errorf("structured data %q %v", m.sdid, m.params)
			}
			if m.params["password"] != "***" || strings.Contains(fmt.Sprint(m), "hunter2") {
				t.Errorf("secret sent: %v", m.params)
			}
			if m.msg != "register refused" {
				t.Errorf("MSG %q", m.msg)
			}
			if !strings.Contains(local.String(), "register refused") {
				t.Errorf("local output lost the record: %q", local.String())
			}

			l.Syslog().Audit(time.Now(), "alice", "192.0.2.9", "config.replace", "config", "version 4")
			a := r.next(t)
			if a.pri != 10*8+5 || a.msgid != "audit" || a.params["user"] != "alice" || a.params["action"] != "config.replace" || a.params["detail"] != "version 4" {
				t.Errorf("audit record %+v", a)
			}
			l.Close() // waits for the sending goroutine
			if st := l.Syslog().Stats(); st.Sent != 2 || st.Dropped != 0 {
				t.Errorf("stats %+v, want 2 sent, 0 dropped", st)
			}
		})
	}
}

// A collector that is down neither blocks the caller nor grows memory:
// the queue fills, then records are dropped and counted; when the
// collector comes back the sink reconnects.
func TestSyslogUnreachableDropsAndReconnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every dial is refused
	s, err := NewSyslog(SyslogSection{Address: addr, Transport: "tcp", QueueSize: 8}, "h")
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Close()
	for i := range 100 {
		s.Audit(time.Now(), "u", "s", "a", strconv.Itoa(i), "")
	}
	st := s.Stats()
	if st.Dropped < 100-8-1 || st.Queued > 8 {
		t.Fatalf("stats %+v: want at least 91 dropped and at most 8 queued", st)
	}
	for deadline := time.Now().Add(10 * time.Second); s.Stats().Failures == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no connection failure counted")
		}
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	defer ln2.Close()
	c, err := ln2.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := readFramed(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseRFC5424(b); err != nil {
		t.Fatalf("after reconnect: %v: %q", err, b)
	}
}

func TestSyslogSectionValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    SyslogSection
		path string
	}{
		{"off", SyslogSection{}, ""},
		{"udp", SyslogSection{Address: "127.0.0.1:514"}, ""},
		{"bad address", SyslogSection{Address: "nowhere"}, "log.syslog.address"},
		{"bad transport", SyslogSection{Address: "127.0.0.1:514", Transport: "sctp"}, "log.syslog.transport"},
		{"ca without tls", SyslogSection{Address: "127.0.0.1:514", CAFile: "/x"}, "log.syslog.transport"},
		{"half key pair", SyslogSection{Address: "127.0.0.1:6514", Transport: "tls", CertFile: "/x"}, "log.syslog.cert_file"},
		{"bad facility", SyslogSection{Address: "127.0.0.1:514", Facility: "mail2"}, "log.syslog.facility"},
		{"bad level", SyslogSection{Address: "127.0.0.1:514", Level: "loud"}, "log.syslog.level"},
		{"bad queue", SyslogSection{Address: "127.0.0.1:514", QueueSize: -1}, "log.syslog.queue_size"},
		{"bad hostname", SyslogSection{Address: "127.0.0.1:514", Hostname: "a b"}, "log.syslog.hostname"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if tc.path == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.path+":") {
				t.Fatalf("got %v, want an error at %s", err, tc.path)
			}
		})
	}
}

// FuzzRecord formats arbitrary attributes and messages and checks that a
// strict RFC 5424 parser reads back what went in.
func FuzzRecord(f *testing.F) {
	f.Add("sip", "reason", `a "b" ]c\d`, "hello")
	f.Add("", "x=y", "\xff\xfe", "é ü")
	f.Add("a b c", "", "", "")
	f.Fuzz(func(t *testing.T, msgid, name, value, msg string) {
		b := appendRecord(nil, 134, time.Unix(1700000000, 0), "h", msgid, []sdParam{{name, value}}, msg)
		m, err := parseRFC5424(b)
		if err != nil {
			t.Fatalf("%v: %q", err, b)
		}
		if m.msgid != headerField(msgid, 32) {
			t.Errorf("msgid %q from %q", m.msgid, msgid)
		}
		want := redact(name, strings.ToValidUTF8(value, "\uFFFD"))
		if got := m.params[paramName(name)]; got != want {
			t.Errorf("param %q=%q, want %q", name, got, want)
		}
		if msg != "" && m.msg != strings.ToValidUTF8(msg, "\uFFFD") {
			t.Errorf("msg %q from %q", m.msg, msg)
		}
	})
}
