package turn

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/portico-edge/portico/internal/testpeer"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type callStats struct {
	BytesReceived   int    `json:"bytesReceived"`
	PacketsReceived int    `json:"packetsReceived"`
	State           string `json:"state"`
	PairState       string `json:"pairState"`
	Local           *struct {
		Type, Address, Protocol, RelayProtocol, URL string
		Port                                        int
	} `json:"local"`
	Remote *struct {
		Type, Address, Protocol string
		Port                    int
	} `json:"remote"`
	Gathered map[string][]string `json:"gathered"`
}

// TestChromiumRelayOnlyCall has headless Chromium call itself with
// iceTransportPolicy "relay" and Portico as its only ICE server, and checks
// from getStats that media flowed over a relay/relay pair through Portico.
func TestChromiumRelayOnlyCall(t *testing.T) {
	chromium := testpeer.Require(t, "chromium")[0]
	cfg := testConfig()
	// Both browsers relay through Portico, so each one's peer is the
	// other's allocation.
	cfg.Peers.RelayToRelay = true
	s := runServer(t, cfg)

	web := httptest.NewServer(http.FileServer(http.Dir("testdata")))
	defer web.Close()

	for _, tc := range []struct{ name, url, relayProtocol string }{
		{"udp", fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", s.port), "udp"},
		{"tcp", fmt.Sprintf("turn:127.0.0.1:%d?transport=tcp", s.port), "tcp"},
		{"tls", fmt.Sprintf("turns:127.0.0.1:%d?transport=tcp", s.tlsPort), "tls"},
	} {
		transport := tc.relayProtocol
		t.Run(tc.name, func(t *testing.T) {
			user, pass, _ := s.MintCredentials("browser-guest", time.Hour)
			ice := []map[string]any{{
				"urls":       []string{tc.url},
				"username":   user,
				"credential": pass,
			}}
			iceJSON, _ := json.Marshal(ice)

			opts := []chromedp.ExecAllocatorOption{
				chromedp.ExecPath(chromium),
				chromedp.UserDataDir(t.TempDir()),
				chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
				chromedp.Flag("disable-background-networking", true),
				chromedp.Flag("disable-component-update", true),
				chromedp.Flag("disable-sync", true),
				chromedp.Flag("disable-dev-shm-usage", true),
				chromedp.Flag("use-fake-device-for-media-stream", true),
				chromedp.Flag("use-fake-ui-for-media-stream", true),
				// Relay candidates on 127.0.0.1 are loopback candidates.
				chromedp.Flag("allow-loopback-in-peer-connection", true),
				// The test's self-signed certificate, for turns:.
				chromedp.Flag("ignore-certificate-errors", true),
			}
			actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
			defer cancel()
			ctx, cancel := chromedp.NewContext(actx)
			defer cancel()
			ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
			defer cancel()

			before := testutil.ToFloat64(s.m.bytesToPeer)
			if _, err := chromedp.Run(ctx, chromedp.Navigate(web.URL+"/webrtc.html")); err != nil {
				t.Fatalf("chromium: navigate: %v", err)
			}
			raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf("relayCall(%s, 20000)", iceJSON), chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("chromium: relayCall: %v", err)
			}
			var st callStats
			if err := json.Unmarshal([]byte(raw), &st); err != nil {
				t.Fatalf("stats %q: %v", raw, err)
			}
			t.Logf("stats: %s", raw)
			if st.Local == nil || st.Remote == nil {
				t.Fatalf("no selected candidate pair: %s", raw)
			}
			if st.Local.Type != "relay" || st.Remote.Type != "relay" {
				t.Errorf("selected pair %s/%s, want relay/relay", st.Local.Type, st.Remote.Type)
			}
			lo, hi := cfg.Relay.PortMin, cfg.Relay.PortMax
			for _, c := range []struct {
				addr string
				port int
			}{{st.Local.Address, st.Local.Port}, {st.Remote.Address, st.Remote.Port}} {
				if c.addr != "127.0.0.1" || c.port < lo || c.port > hi {
					t.Errorf("candidate %s:%d is not a Portico relay address (127.0.0.1:%d-%d)", c.addr, c.port, lo, hi)
				}
			}
			if st.Local.RelayProtocol != transport {
				t.Errorf("relayProtocol %q, want %q", st.Local.RelayProtocol, transport)
			}
			if st.BytesReceived <= 0 {
				t.Errorf("no media bytes received: %s", raw)
			}
			if relayed := testutil.ToFloat64(s.m.bytesToPeer) - before; relayed < float64(st.BytesReceived) {
				t.Errorf("Portico relayed %v bytes, less than the %d the browser received", relayed, st.BytesReceived)
			}
			if !strings.Contains(strings.Join(st.Gathered["a"], "\n"), "typ relay") {
				t.Errorf("no relay candidate gathered: %v", st.Gathered)
			}
		})
	}
}
