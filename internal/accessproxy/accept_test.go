package accessproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/connlimit/connlimittest"
)

// TestServeSurvivesAcceptErrors: an accept error that is not "temporary"
// (ENOBUFS, ENOMEM) must not end the shared port, which would stop the
// node; the port answers once accepting works again.
func TestServeSurvivesAcceptErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOBUFS, syscall.ENOMEM, syscall.EMFILE} {
		t.Run(errno.Error(), func(t *testing.T) {
			p := newPKI(t, "portico.test")
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(Config{Listen: ln.Addr().String()}, Deps{Certs: p.store})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx, &connlimittest.FailingListener{Listener: ln, N: 2, Errno: errno}) }()
			defer func() {
				cancel()
				s.Close()
				<-done
			}()
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: portico.test\r\nConnection: close\r\n\r\n")
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "HTTP/1.1 ") {
				select {
				case serr := <-done:
					done <- serr
					if serr != nil && !errors.Is(serr, ErrClosed) {
						t.Fatalf("serving ended: %v", serr)
					}
				default:
				}
				t.Fatalf("no HTTP answer after accept errors: %q, %v", line, err)
			}
		})
	}
}
