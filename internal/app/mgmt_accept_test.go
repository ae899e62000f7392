package app

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/connlimit/connlimittest"
)

// TestMgmtSurvivesAcceptErrors: an accept error net/http does not retry
// itself (ENOBUFS, ENOMEM are not "temporary") must not end the
// management listener, which would stop the whole node.
func TestMgmtSurvivesAcceptErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOBUFS, syscall.ENOMEM, syscall.EMFILE} {
		t.Run(errno.Error(), func(t *testing.T) {
			certPEM, keyPEM, err := selfSigned("test", []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			m := newMgmtServer(ok, serverTLS(cert), slog.New(slog.DiscardHandler))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			m.curLn = &connlimittest.FailingListener{Listener: ln, N: 2, Errno: errno}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- m.run(ctx, func() time.Duration { return time.Second }) }()
			defer func() {
				cancel()
				<-done
			}()
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			resp, err := hc.Get("https://" + ln.Addr().String() + "/healthz")
			if err != nil {
				select {
				case rerr := <-done:
					done <- rerr
					t.Fatalf("management stopped: %v", rerr)
				default:
				}
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %s", resp.Status)
			}
		})
	}
}
