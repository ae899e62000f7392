package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portico-edge/portico/internal/testpeer"
)

// sipWSSConfig is a daemon config with the SIP edge (external and internal
// UDP only), the media relay and the access proxy on 127.0.0.2:apPort
// handing SNI sip.portico.test to the SIP edge's WSS handoff. With sip
// false the SIP edge is disabled.
func sipWSSConfig(t *testing.T, mgmt, kam string, apPort int, sip bool) string {
	cfg := sipNodeConfig(mgmt, testpeer.FreePort(t), testpeer.FreePort(t), kam)
	if !sip {
		cfg = strings.Replace(cfg, "sip:\n  enabled: true", "sip:\n  enabled: false", 1)
	}
	return cfg + fmt.Sprintf(`access_proxy:
  enabled: true
  listen: 127.0.0.2:%d
  routes:
    - name: sip-wss
      match: {sni: [sip.portico.test]}
      action: handoff
      handler: sip-wss
`, apPort)
}

// wsConn is a client-side SIP-over-WebSocket connection (RFC 7118).
type wsConn struct {
	net.Conn
	r io.Reader // what the upgrade read ahead, then the connection
}

func (c *wsConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// dialSIPWSS dials addr with TLS (SNI sip.portico.test, the certificate
// verified against roots) and upgrades to WebSocket with the "sip"
// subprotocol. No SIP-over-WSS client is packaged in Debian (sipp and
// baresip have no WebSocket transport there), so the client is Go: gobwas/ws,
// the WebSocket library sipgo itself uses.
func dialSIPWSS(t *testing.T, addr string, roots *x509.CertPool) *wsConn {
	t.Helper()
	// ALPN as a browser offers it: h2 first, http/1.1 second.
	d := tls.Dialer{Config: &tls.Config{ServerName: "sip.portico.test", RootCAs: roots, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("ALPN negotiated %q, want http/1.1", p)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	u, _ := url.Parse("wss://sip.portico.test/")
	br, hs, err := ws.Dialer{Protocols: []string{"sip"}}.Upgrade(c, u)
	if err != nil {
		t.Fatalf("WebSocket upgrade through the access proxy: %v", err)
	}
	if hs.Protocol != "sip" {
		t.Errorf("negotiated subprotocol %q, want sip", hs.Protocol)
	}
	var r io.Reader = c
	if br != nil {
		r = io.MultiReader(br, c)
	}
	return &wsConn{Conn: c, r: r}
}

// transact sends one SIP request as a text frame and returns the first
// final response's status line.
func (c *wsConn) transact(t *testing.T, msg string) string {
	t.Helper()
	if err := wsutil.WriteClientText(c, []byte(strings.ReplaceAll(msg, "\n", "\r\n"))); err != nil {
		t.Fatal(err)
	}
	for {
		b, _, err := wsutil.ReadServerData(c)
		if err != nil {
			t.Fatalf("reading the response: %v", err)
		}
		line, _, _ := strings.Cut(string(b), "\r\n")
		if !strings.HasPrefix(line, "SIP/2.0 1") {
			return line
		}
	}
}

// decline answers a request with 603, echoing its Via, From, To (tagged),
// Call-ID and CSeq.
func decline(req string) string {
	head, _, _ := strings.Cut(req, "\r\n\r\n")
	res := "SIP/2.0 603 Decline\r\n"
	for _, h := range strings.Split(head, "\r\n")[1:] {
		name, _, _ := strings.Cut(h, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v", "from", "f", "call-id", "i", "cseq":
			res += h + "\r\n"
		case "to", "t":
			res += h + ";tag=wss-decline\r\n"
		}
	}
	return res + "Content-Length: 0\r\n\r\n"
}

// TestSIPWSSThroughAccessProxy: portico serve with the SIP edge, the media
// relay and the access proxy; a client reaches the SIP edge over WSS on the
// access proxy's port (TLS terminated by the access proxy, route by SNI,
// action handoff, handler sip-wss) and registers to Kamailio; the live
// registration shows the client's own address and transport wss, and a call
// from inside reaches the client over that same connection. A config
// routing to sip-wss without the SIP edge is refused, naming the route.
func TestSIPWSSThroughAccessProxy(t *testing.T) {
	testpeer.Require(t, "kamailio")
	kam := startKamailio(t)
	dir := t.TempDir()
	mgmt := freeAddr(t)
	apPort := testpeer.FreePort(t)
	d := startDaemon(t, dir, sipWSSConfig(t, mgmt, kam, apPort, true), mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	c := newClient(t, d.url)
	c.csrf = true
	c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})

	// From the very first start the access proxy has a certificate: the
	// management listener's self-signed one is the default.
	if got, want := peerCert(t, fmt.Sprintf("127.0.0.2:%d", apPort), "sip.portico.test"), peerCert(t, mgmt, ""); !got.Equal(want) {
		t.Errorf("access proxy at first start presents %q, want the management certificate %q", got.Subject, want.Subject)
	}
	// The route's name gets its own certificate, chosen by SNI.
	cp, kp := selfSignedPEM(t, "sip.portico.test", x509.ECDSAWithSHA256)
	c.must(201, "POST", "/api/v1/certificates", map[string]string{"name": "sip wss", "pem": cp, "key_pem": kp})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(cp))
	wc := dialSIPWSS(t, fmt.Sprintf("127.0.0.2:%d", apPort), roots)
	status := wc.transact(t, `REGISTER sip:portico.test SIP/2.0
Via: SIP/2.0/WSS q3v9jd0ak2.invalid;branch=z9hG4bK-wss-1
Max-Forwards: 70
From: <sip:wss-alice@portico.test>;tag=wss1
To: <sip:wss-alice@portico.test>
Call-ID: wss-register-1@q3v9jd0ak2.invalid
CSeq: 1 REGISTER
Contact: <sip:wss-alice@q3v9jd0ak2.invalid;transport=ws>
Expires: 300
Content-Length: 0

`)
	if status != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER over WSS through the access proxy: %q\n%s", status, d.out.String())
	}
	var regs []struct{ AOR, Source, Transport string }
	waitFor(t, 10*time.Second, func() bool {
		c.must(200, "GET", "/api/v1/registrations", nil).json(t, &regs)
		return len(regs) == 1
	})
	if !strings.Contains(regs[0].AOR, "wss-alice@portico.test") || regs[0].Source != wc.LocalAddr().String() || regs[0].Transport != "wss" {
		t.Errorf("live registration %+v, want wss from %s", regs[0], wc.LocalAddr())
	}
	// CRLF keepalive over the handed-off connection (RFC 5626 section 3.5.1).
	if err := wsutil.WriteClientText(wc, []byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if b, _, err := wsutil.ReadServerData(wc); err != nil || string(b) != "\r\n" {
		t.Errorf("keepalive pong %q, %v", b, err)
	}

	// A call from inside comes back over the same WSS connection (the flow
	// token in the Path Kamailio stored) and is declined there.
	inside, err := net.ListenPacket("udp", "127.0.0.5:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	me := inside.LocalAddr().String()
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.5\r\ns=-\r\nc=IN IP4 127.0.0.5\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
	invite := fmt.Sprintf("INVITE sip:wss-alice@portico.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-in-1;rport\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:carol@portico.test>;tag=c1\r\nTo: <sip:wss-alice@portico.test>\r\n"+
		"Call-ID: wss-in-1@127.0.0.5\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@%s>\r\n"+
		"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", me, me, len(sdp), sdp)
	kamAddr, _ := net.ResolveUDPAddr("udp", kam)
	if _, err := inside.WriteTo([]byte(invite), kamAddr); err != nil {
		t.Fatal(err)
	}
	b, _, err := wsutil.ReadServerData(wc)
	if err != nil {
		t.Fatalf("no INVITE over the WSS connection: %v", err)
	}
	inv := string(b)
	if !strings.HasPrefix(inv, "INVITE ") || !strings.Contains(inv, "SIP/2.0/WSS") {
		t.Fatalf("over the WSS connection:\n%s", inv)
	}
	for _, a := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		if strings.Contains(inv, a) {
			t.Errorf("INVITE sent outside names inside address %s:\n%s", a, inv)
		}
	}
	if err := wsutil.WriteClientText(wc, []byte(decline(inv))); err != nil {
		t.Fatal(err)
	}
	inside.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		n, _, err := inside.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no final response to the inside INVITE: %v", err)
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		if strings.HasPrefix(line, "SIP/2.0 1") {
			continue
		}
		if line != "SIP/2.0 603 Decline" {
			t.Errorf("inside caller got %q, want the endpoint's 603", line)
		}
		break
	}
	var calls []struct {
		CallType    string `json:"call_type"`
		Status      int    `json:"status"`
		Disposition string `json:"disposition"`
	}
	waitFor(t, 10*time.Second, func() bool {
		c.must(200, "GET", "/api/v1/history/calls", nil).json(t, &calls)
		return len(calls) == 1
	})
	if calls[0].CallType != "inbound" || calls[0].Status != 603 {
		t.Errorf("call history %+v", calls[0])
	}
	d.stop()

	t.Run("sip-wss route without the SIP edge", func(t *testing.T) {
		f := filepath.Join(dir, "nosip.yaml")
		os.WriteFile(f, []byte(sipWSSConfig(t, freeAddr(t), kam, testpeer.FreePort(t), false)), 0o600)
		out, err := run(t, nil, "serve", "--config", f, "--data", filepath.Join(dir, "data-nosip"))
		if err == nil {
			t.Fatalf("serve started with a sip-wss route and SIP disabled:\n%s", out)
		}
		if !strings.Contains(out, `access_proxy.routes[0].handler (line 38, column 16): "sip-wss"`) {
			t.Errorf("output does not name the route's handler:\n%s", out)
		}
	})
}
