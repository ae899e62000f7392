package accessproxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/certs/certtest"
)

// The XMPP peer here is a stand-in written in Go, not prosody: it performs
// the RFC 6120 §5 STARTTLS steps (stream header, features, <starttls/>,
// <proceed/>, TLS, stream restart) and XEP-0368 direct TLS with a
// certificate only it holds, which is what passthrough must preserve.
// prosody (Debian) was not wired in yet because it wants a service user,
// a data directory and readable certificates set up before it starts; the
// stand-in keeps the test self-contained and every protocol step visible.

const (
	streamNS   = "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'"
	tlsNS      = "urn:ietf:params:xml:ns:xmpp-tls"
	saslNS     = "urn:ietf:params:xml:ns:xmpp-sasl"
	streamOpen = "<?xml version='1.0'?><stream:stream to='example.test' " + streamNS + ">"
)

// readUntil reads from r until the accumulated text ends with suffix.
func readUntil(r *bufio.Reader, suffix string) (string, error) {
	var sb strings.Builder
	for sb.Len() < 8192 {
		b, err := r.ReadByte()
		if err != nil {
			return sb.String(), err
		}
		sb.WriteByte(b)
		if strings.HasSuffix(sb.String(), suffix) {
			return sb.String(), nil
		}
	}
	return sb.String(), fmt.Errorf("no %q in %q", suffix, sb.String())
}

// xmppPeer serves STARTTLS on plain and direct TLS on direct.
func xmppPeer(t *testing.T, cert tls.Certificate) (plain, direct string, seen chan string) {
	seen = make(chan string, 8)
	lp, _ := net.Listen("tcp", "127.0.0.1:0")
	ld, _ := net.Listen("tcp", "127.0.0.1:0")
	t.Cleanup(func() { lp.Close(); ld.Close() })
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"xmpp-client"}}
	afterTLS := func(c net.Conn) {
		r := bufio.NewReader(c)
		head, err := readUntil(r, "version='1.0'>")
		if err != nil {
			return
		}
		seen <- "secure-stream:" + c.RemoteAddr().String()[:9] + ":" + fmt.Sprint(strings.Contains(head, "to='example.test'"))
		io.WriteString(c, "<?xml version='1.0'?><stream:stream from='example.test' id='s2' "+streamNS+"><stream:features><mechanisms xmlns='"+saslNS+"'><mechanism>PLAIN</mechanism></mechanisms></stream:features>")
		readUntil(r, "</stream:stream>")
	}
	go func() {
		for {
			c, err := lp.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				if _, err := readUntil(r, "version='1.0'>"); err != nil {
					return
				}
				io.WriteString(c, "<?xml version='1.0'?><stream:stream from='example.test' id='s1' "+streamNS+"><stream:features><starttls xmlns='"+tlsNS+"'><required/></starttls></stream:features>")
				if _, err := readUntil(r, "<starttls xmlns='"+tlsNS+"'/>"); err != nil {
					return
				}
				io.WriteString(c, "<proceed xmlns='"+tlsNS+"'/>")
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return
				}
				afterTLS(tc)
			}()
		}
	}()
	go func() {
		for {
			c, err := ld.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return
				}
				afterTLS(tc)
			}()
		}
	}()
	return lp.Addr().String(), ld.Addr().String(), seen
}

// xmppSecure opens a stream on a TLS connection and returns the features.
func xmppSecure(c *tls.Conn) (string, error) {
	io.WriteString(c, streamOpen)
	r := bufio.NewReader(c)
	out, err := readUntil(r, "</stream:features>")
	io.WriteString(c, "</stream:stream>")
	return out, err
}

func TestXMPPPassthrough(t *testing.T) {
	serverCA := certtest.NewCA(t, "XMPP Server CA")
	leaf := serverCA.Issue(t, []string{"example.test", "xmpp.example.test"}, certtest.Options{})
	cert, _ := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	plain, direct, seen := xmppPeer(t, cert)
	p := newPKI(t, "portal.example.test")
	cfg := Config{Routes: []Route{
		{Name: "xmpp-direct", Match: Match{ALPN: []string{"xmpp-client"}}, Action: ActionXMPP, Upstream: direct},
		{Name: "portal", Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: "http://127.0.0.1:9"},
		{Name: "xmpp-starttls", Action: ActionXMPP, Upstream: plain, SendProxyProtocol: 0},
	}}
	_, addr := startProxy(t, cfg, Deps{Certs: p.store})
	clientTLS := &tls.Config{RootCAs: serverCA.Pool(), ServerName: "example.test"}

	t.Run("starttls on the shared port", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, streamOpen)
		r := bufio.NewReader(c)
		feat, err := readUntil(r, "</stream:features>")
		if err != nil || !strings.Contains(feat, "<starttls xmlns='"+tlsNS+"'>") {
			t.Fatalf("features %q %v", feat, err)
		}
		io.WriteString(c, "<starttls xmlns='"+tlsNS+"'/>")
		if got, err := readUntil(r, "/>"); err != nil || !strings.Contains(got, "<proceed") {
			t.Fatalf("proceed %q %v", got, err)
		}
		tc := tls.Client(c, clientTLS) // verifies the XMPP server's own certificate end to end
		if err := tc.Handshake(); err != nil {
			t.Fatalf("end-to-end TLS: %v", err)
		}
		feat, err = xmppSecure(tc)
		if err != nil || !strings.Contains(feat, "<mechanism>PLAIN</mechanism>") {
			t.Fatalf("secure features %q %v", feat, err)
		}
		if s := <-seen; s != "secure-stream:127.0.0.1:true" {
			t.Fatalf("server saw %s", s)
		}
	})
	t.Run("direct tls by alpn (XEP-0368)", func(t *testing.T) {
		cfg := clientTLS.Clone()
		cfg.NextProtos = []string{"xmpp-client"}
		tc, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatalf("direct TLS: %v", err)
		}
		defer tc.Close()
		if tc.ConnectionState().PeerCertificates[0].Issuer.CommonName != "XMPP Server CA" {
			t.Fatal("not the XMPP server's certificate")
		}
		feat, err := xmppSecure(tc)
		if err != nil || !strings.Contains(feat, "<mechanism>PLAIN</mechanism>") {
			t.Fatalf("features %q %v", feat, err)
		}
		<-seen
	})
	t.Run("https still routed on the same port", func(t *testing.T) {
		leaf, err := servedLeaf(t, addr, p.clientTLS("portal.example.test"))
		if err != nil || leaf.Subject.CommonName != "portal.example.test" {
			t.Fatalf("%v %v", leaf, err)
		}
	})
}
