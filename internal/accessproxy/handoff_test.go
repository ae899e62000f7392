package accessproxy

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
)

// wsLike is a handoff handler that speaks only HTTP/1.1 (as the SIP edge's
// WSS handler does); it reports the protocol each connection negotiated.
type wsLike struct{ got chan string }

func (h wsLike) ALPNProtocols() []string { return []string{"http/1.1"} }

func (h wsLike) HandleConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	h.got <- c.(*tls.Conn).ConnectionState().NegotiatedProtocol
}

// TestHandoffALPN: a handler that names its protocols gets one of them
// whatever the client prefers; a client offering none of them is refused
// in the handshake; a handler that names none echoes the client's first.
func TestHandoffALPN(t *testing.T) {
	p := newPKI(t, "sip.example.test", "turn.example.test")
	ws := wsLike{got: make(chan string, 4)}
	echoed := make(chan string, 4)
	turn := ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
		defer c.Close()
		echoed <- c.(*tls.Conn).ConnectionState().NegotiatedProtocol
	})
	_, addr := startProxy(t, Config{Routes: []Route{
		{Name: "wss", Match: Match{SNI: []string{"sip.example.test"}}, Action: ActionHandoff, Handler: "sip-wss"},
		{Name: "turn", Match: Match{SNI: []string{"turn.example.test"}}, Action: ActionHandoff, Handler: "turn"},
	}}, Deps{Certs: p.store, Handlers: map[string]ConnHandler{"sip-wss": ws, "turn": turn}})

	dial := func(sni string, alpn ...string) (string, error) {
		c, err := tls.Dial("tcp", addr, p.clientTLS(sni, alpn...))
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.ConnectionState().NegotiatedProtocol, nil
	}
	for _, tc := range []struct {
		name string
		alpn []string
		want string
	}{
		{"browser order h2 first", []string{"h2", "http/1.1"}, "http/1.1"},
		{"http/1.1 only", []string{"http/1.1"}, "http/1.1"},
		{"no alpn", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dial("sip.example.test", tc.alpn...)
			if err != nil || got != tc.want {
				t.Fatalf("client negotiated %q, %v; want %q", got, err, tc.want)
			}
			if h := <-ws.got; h != tc.want {
				t.Fatalf("handler saw %q, want %q", h, tc.want)
			}
		})
	}
	t.Run("h2 only refused", func(t *testing.T) {
		if got, err := dial("sip.example.test", "h2"); err == nil {
			t.Fatalf("handshake offering only h2 to an HTTP/1.1 handler succeeded (%q)", got)
		}
	})
	t.Run("handler without protocols echoes the client's first", func(t *testing.T) {
		got, err := dial("turn.example.test", "stun.turn", "h2")
		if err != nil || got != "stun.turn" || <-echoed != "stun.turn" {
			t.Fatalf("negotiated %q, %v", got, err)
		}
	})
}
