package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/ladder"
)

// TestLadderEndpoints runs the ladder and trace handlers against a real
// ladder store (the SIP edge that feeds it in production is stood in for
// by Observe calls).
func TestLadderEndpoints(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	w := login(s, "192.0.2.1:1000", "admin", "admin-password")
	cookie := w.Result().Cookies()[0]
	get := func(path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(cookie)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	if w := get("/api/v1/calls/c1/ladder"); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "capture") {
		t.Errorf("without capture: %d %s", w.Code, w.Body)
	}

	st := ladder.New(ladder.Config{})
	s.deps.Ladder = func() LadderService { return st }
	st.Link("c1", "k1")
	pk := ladder.Packet{Interface: ladder.External, Transport: "udp", Dir: ladder.In, Time: time.Now(),
		Local: netip.MustParseAddrPort("192.0.2.10:5060"), Remote: netip.MustParseAddrPort("198.51.100.7:5060")}
	st.Observe(pk, []byte("INVITE sip:1001@x SIP/2.0\r\nCall-ID: k1\r\nTo: <sip:1001@x>\r\nCSeq: 1 INVITE\r\n\r\n"))
	if w := get("/api/v1/calls/c1/ladder"); w.Code != 200 || !strings.Contains(w.Body.String(), `"summary": "INVITE sip:1001@x"`) {
		t.Errorf("ladder: %d %s", w.Code, w.Body)
	}
	if w := get("/api/v1/calls/c1/ladder.svg"); w.Code != 200 || w.Header().Get("Content-Type") != "image/svg+xml" || !strings.Contains(w.Body.String(), `href="#msg-0"`) {
		t.Errorf("svg: %d %v", w.Code, w.Header())
	}
	if w := get("/api/v1/calls/c1/ladder.pcap"); w.Code != 200 || w.Header().Get("Content-Disposition") != `attachment; filename="call-c1.pcap"` || w.Body.Len() < 24+16+28 {
		t.Errorf("pcap: %d %v %d bytes", w.Code, w.Header(), w.Body.Len())
	}
	if w := get("/api/v1/calls/nope/ladder.svg"); w.Code != http.StatusNotFound {
		t.Errorf("unknown call: %d", w.Code)
	}
	for _, q := range []string{"seconds=0", "seconds=601", "seconds=x", "user=" + strings.Repeat("u", 300)} {
		if w := get("/api/v1/diagnostics/sip-trace?" + q); w.Code != http.StatusBadRequest {
			t.Errorf("trace %s: %d", q, w.Code)
		}
	}

	// A trace delivers what the store observes, then ends with its count.
	srv := httptest.NewServer(s)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/diagnostics/sip-trace?address=198.51.100.7&seconds=1", nil)
	req.AddCookie(cookie)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("trace: %v %v", err, res)
	}
	// The handler subscribed before it answered.
	st.Observe(pk, []byte("OPTIONS sip:x SIP/2.0\r\nCall-ID: o1\r\nAuthorization: Digest response=\"s3cret\"\r\n\r\n"))
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if b := string(body); !strings.Contains(b, "event: message\ndata: {") || !strings.Contains(b, `OPTIONS sip:x`) || strings.Contains(b, "s3cret") || !strings.HasSuffix(b, "event: end\ndata: {\"dropped\":0}\n\n") {
		t.Errorf("trace stream:\n%s", b)
	}

	// At most traceMaxRunning at once.
	for range traceMaxRunning {
		defer st.Subscribe(ladder.Filter{}).Cancel()
	}
	if w := get("/api/v1/diagnostics/sip-trace"); w.Code != http.StatusTooManyRequests {
		t.Errorf("trace beyond the limit: %d", w.Code)
	}
}
