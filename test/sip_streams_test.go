package test

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestSIPLiveStreams: portico serve (user-space relay) in front of
// Kamailio, which routes a guest call from sipp outside to a sipp UAS
// inside that echoes RTP. While the call runs, the test sends RTP from the
// caller's IP to the relay port GET /api/v1/calls shows, with two sequence
// numbers skipped: the call's stream counts what each side sent (the echo
// for the inside), names the latched peers, and
// portico_media_packets_lost_total counts the gap on each leg. The
// call's page in the console (Chromium) shows the stream. The
// administrator then ends the call, and sipp sees the BYE.
func TestSIPLiveStreams(t *testing.T) {
	bins := testpeer.Require(t, "sipp", "kamailio", "chromium")
	sipp := bins[0]
	uasPort := strconv.Itoa(testpeer.FreePort(t))
	uas := exec.Command(sipp, "-sn", "uas", "-i", "127.0.0.5", "-p", uasPort, "-mp", strconv.Itoa(testpeer.FreePort(t)), "-rtp_echo", "-nostdin")
	uas.Dir = t.TempDir()
	if err := uas.Start(); err != nil {
		t.Fatalf("sipp uas: %v", err)
	}
	t.Cleanup(func() { uas.Process.Kill(); uas.Wait() })
	kam := startKamailio(t, `MCU_URI="sip:127.0.0.5:`+uasPort+`"`)
	mgmt := freeAddr(t)
	extPort := testpeer.FreePort(t)
	cfg := sipNodeConfig(mgmt, extPort, testpeer.FreePort(t), kam) + "  guest: {enabled: true, vmr_ranges: [\"1000-1999\"]}\n"
	// Sequence gaps are seen where packets pass user space.
	// The call must outlive a slow browser on a loaded machine: the
	// relay's inactivity timeout (60 s) would end it and the page would
	// show the recorded call instead.
	cfg = strings.Replace(cfg, "media:\n  enabled: true\n", "media:\n  enabled: true\n  fast_path: off\n  inactivity_timeout: 10m\n", 1)
	d := startDaemon(t, t.TempDir(), cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	raw, _ := os.ReadFile("../internal/api/openapi.json")
	oc := newOpenAPIChecker(t, raw)
	c := newClient(t, d.url)
	c.record = func(method, path string, code int, body []byte) { oc.check(t, method, path, code, body) }
	c.csrf = true
	c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})

	scen, _ := filepath.Abs("testdata/sipp/streams_call.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	call := exec.CommandContext(ctx, sipp, "-sf", scen, "-s", "1001", "-i", "127.0.0.1", "-p", strconv.Itoa(testpeer.FreePort(t)),
		"-m", "1", "-nostdin", "-timeout", "80s", "127.0.0.2:"+strconv.Itoa(extPort))
	call.Dir = t.TempDir()
	var out strings.Builder
	call.Stdout, call.Stderr = &out, &out
	if err := call.Start(); err != nil {
		t.Fatal(err)
	}

	type stream struct {
		Kind         string
		PacketsIn    uint64 `json:"packets_in"`
		PacketsOut   uint64 `json:"packets_out"`
		RelayOutside string `json:"relay_outside"`
		RelayInside  string `json:"relay_inside"`
		PeerOutside  string `json:"peer_outside"`
		PeerInside   string `json:"peer_inside"`
	}
	type liveCall struct {
		ID, Protocol, State string
		Streams             []stream
	}
	var calls []liveCall
	read := func() {
		calls = nil
		c.must(200, "GET", "/api/v1/calls", nil).json(t, &calls)
	}
	waitFor(t, 20*time.Second, func() bool {
		read()
		return len(calls) == 1 && calls[0].State == "confirmed" && len(calls[0].Streams) == 1
	})
	st := calls[0].Streams[0]
	if calls[0].Protocol != "sip" || st.Kind != "audio" || !strings.HasPrefix(st.RelayOutside, "127.0.0.2:") || !strings.HasPrefix(st.RelayInside, "127.0.0.3:") {
		t.Fatalf("live SIP call %+v", calls[0])
	}
	relay, err := netip.ParseAddrPort(st.RelayOutside)
	if err != nil {
		t.Fatal(err)
	}
	// The caller's media from its signalling IP latches the outside leg.
	caller, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	sent := 0
	for _, seq := range []uint16{1, 2, 3, 4, 5, 8, 9, 10} { // 6 and 7 lost
		p := make([]byte, 172)
		p[0], p[1] = 0x80, 8
		binary.BigEndian.PutUint16(p[2:], seq)
		binary.BigEndian.PutUint32(p[8:], 0xCA11)
		if _, err := caller.WriteToUDPAddrPort(p, relay); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	waitFor(t, 20*time.Second, func() bool {
		read()
		return len(calls) == 1 && len(calls[0].Streams) == 1 && calls[0].Streams[0].PacketsIn == uint64(sent) && calls[0].Streams[0].PacketsOut == uint64(sent)
	})
	st = calls[0].Streams[0]
	if st.PeerOutside != caller.LocalAddr().String() || !strings.HasPrefix(st.PeerInside, "127.0.0.5:") {
		t.Errorf("stream peers: outside %q (want %v), inside %q", st.PeerOutside, caller.LocalAddr(), st.PeerInside)
	}
	if lost := metricSum(string(c.must(200, "GET", "/metrics", nil).body), "portico_media_packets_lost_total"); lost != 4 {
		// The gap shows on both legs: in the caller's packets and in the
		// UAS's echo of them.
		t.Errorf("portico_media_packets_lost_total = %v, want 4", lost)
	}

	// The call's page in the console shows the same stream.
	b, consoleErrs := newBrowser(t, bins[2], d.url, shotDir(t))
	b.signIn("admin", adminPassword)
	b.open("/calls/" + calls[0].ID)
	b.until(10*time.Second, `!!document.querySelector("#streams tbody tr")`)
	row := b.eval(`[...document.querySelector("#streams tbody tr").children].map(td => td.textContent).join("|")`)
	if f := strings.Split(row, "|"); len(f) != 9 || f[0] != "audio" || f[2] != st.PeerOutside+" ⇄ "+st.RelayOutside || f[4] != "8" || f[5] != "8" {
		t.Errorf("stream row on the call page %q", row)
	}
	b.screenshot("call-sip")
	b.signOut()
	for _, e := range consoleErrs() {
		t.Errorf("browser console: %s", e)
	}

	c.must(204, "DELETE", "/api/v1/calls/"+calls[0].ID, nil)
	if err := call.Wait(); err != nil {
		t.Fatalf("sipp call: %v\n%s", err, out.String())
	}
}
