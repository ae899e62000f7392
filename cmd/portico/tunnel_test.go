package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTunnelToken: "portico tunnel token" POSTs to the API with the bearer
// token and prints the enrollment token alone on stdout. The API here is a
// stand-in (internal/app's tests exercise the real endpoint).
func TestTunnelToken(t *testing.T) {
	var got string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.Path + " " + r.Header.Get("Authorization") + " " + r.Header.Get("Content-Type")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"token":"pt1.secret.fp","expires_at":"2030-01-01T00:00:00Z"}`))
	}))
	defer srv.Close()
	out, errOut, err := runCLI(t, nil, "tunnel", "token", "--url", srv.URL, "--token", "pt_x", "--insecure")
	if err != nil {
		t.Fatal(err)
	}
	if got != "POST /api/v1/tunnel/tokens Bearer pt_x application/json" {
		t.Fatalf("request %q", got)
	}
	if strings.TrimSpace(out) != "pt1.secret.fp" || !strings.Contains(errOut, "2030-01-01") {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}
}

// TestTunnelRotate: "portico tunnel rotate" POSTs to the API and prints the
// new fingerprint; an API refusal is the command's error. The API here is a
// stand-in (test/TestTunnelRotation runs the real endpoint).
func TestTunnelRotate(t *testing.T) {
	var got string
	code := http.StatusOK
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.Path + " " + r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if code == http.StatusOK {
			w.Write([]byte(`{"fingerprint":"ab12"}`))
		} else {
			w.Write([]byte(`{"error":"the tunnel is down"}`))
		}
	}))
	defer srv.Close()
	out, _, err := runCLI(t, nil, "tunnel", "rotate", "--url", srv.URL, "--token", "pt_x", "--insecure")
	if err != nil {
		t.Fatal(err)
	}
	if got != "POST /api/v1/tunnel/rotate Bearer pt_x" || strings.TrimSpace(out) != "ab12" {
		t.Fatalf("request %q, stdout %q", got, out)
	}
	code = http.StatusConflict
	if _, _, err := runCLI(t, nil, "tunnel", "rotate", "--url", srv.URL, "--token", "pt_x", "--insecure"); err == nil || !strings.Contains(err.Error(), "tunnel is down") {
		t.Fatalf("refusal: %v", err)
	}
}
