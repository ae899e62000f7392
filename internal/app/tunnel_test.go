package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
	"github.com/portico-edge/portico/internal/tunnel"
)

// TestTunnelServerAPI: a node with tunnel.role server issues an enrollment
// token through the API, a client enrolls with it and connects, and
// GET /api/v1/tunnel and the event history show the tunnel up.
func TestTunnelServerAPI(t *testing.T) {
	port := testpeer.FreePort(t)
	a, err := startTestApp(t, fmt.Sprintf("tunnel:\n  enabled: true\n  role: server\n  listen: 127.0.0.1:%d\n", port), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	do := apiClient(t, a)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.built.tunnel.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	status := func() tunnel.Stats {
		w := do("GET", "/api/v1/tunnel", "", "")
		if w.Code != http.StatusOK {
			t.Fatalf("GET /api/v1/tunnel: %d %s", w.Code, w.Body)
		}
		var st tunnel.Stats
		if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := status(); st.Role != "server" || st.State != "down" {
		t.Fatalf("before a client: %+v", st)
	}
	w := do("POST", "/api/v1/tunnel/tokens", "application/json", "{}")
	if w.Code != http.StatusCreated {
		t.Fatalf("POST /api/v1/tunnel/tokens: %d %s", w.Code, w.Body)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || tok.Token == "" {
		t.Fatalf("token body %s", w.Body)
	}

	c, err := tunnel.NewClient(tunnel.Config{Server: fmt.Sprintf("127.0.0.1:%d", port), EnrollmentToken: tok.Token}, tunnel.Deps{State: &tunnel.MemState{}})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan error, 1)
	go func() { cdone <- c.Run(cctx) }()
	t.Cleanup(func() { ccancel(); <-cdone })

	if w := do("POST", "/api/v1/tunnel/enroll", "application/json", `{"token":"`+tok.Token+`"}`); w.Code != http.StatusConflict {
		t.Fatalf("POST /api/v1/tunnel/enroll on the server: %d %s", w.Code, w.Body)
	}
	for end := time.Now().Add(15 * time.Second); status().State != "up"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the tunnel never came up")
		}
	}
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		w := do("GET", "/api/v1/events", "", "")
		if strings.Contains(w.Body.String(), "tunnel server up") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no tunnel event: %s", w.Body)
		}
	}
}

// TestTunnelOffAPI: without the section the endpoints say it is off.
func TestTunnelOffAPI(t *testing.T) {
	_, do := newTestApp(t)
	for _, r := range []struct{ method, path string }{{"GET", "/api/v1/tunnel"}, {"POST", "/api/v1/tunnel/tokens"}, {"POST", "/api/v1/tunnel/enroll"}} {
		if w := do(r.method, r.path, "application/json", "{}"); w.Code != http.StatusNotFound {
			t.Fatalf("%s %s: %d", r.method, r.path, w.Code)
		}
	}
}

// TestTunnelEnrollAPI: on a client, POST /api/v1/tunnel/enroll refuses a
// token that is not one (422) without reaching for the server, and a
// request without a body (400).
func TestTunnelEnrollAPI(t *testing.T) {
	a, err := startTestApp(t, fmt.Sprintf("tunnel:\n  enabled: true\n  role: client\n  server: 127.0.0.1:%d\n", testpeer.FreePort(t)), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	do := apiClient(t, a)
	if w := do("POST", "/api/v1/tunnel/enroll", "application/json", `{"token":"pt1.nonsense"}`); w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "wrong enrollment token") {
		t.Fatalf("a malformed token: %d %s", w.Code, w.Body)
	}
	if w := do("POST", "/api/v1/tunnel/enroll", "application/json", ``); w.Code != http.StatusBadRequest {
		t.Fatalf("no body: %d %s", w.Code, w.Body)
	}
}
