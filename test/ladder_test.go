package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// ladderRig is portico serve (guest calls to 1000-1999, signalling kept)
// in front of Kamailio, which routes the guest calls to a sipp UAS inside
// on 127.0.0.5.
type ladderRig struct {
	d       *daemon
	kam     string
	sipp    string
	extPort int
}

func startLadderRig(t *testing.T, sipp string) *ladderRig {
	t.Helper()
	uasPort := strconv.Itoa(testpeer.FreePort(t))
	uas := exec.Command(sipp, "-sn", "uas", "-i", "127.0.0.5", "-p", uasPort, "-mp", strconv.Itoa(testpeer.FreePort(t)), "-nostdin")
	uas.Dir = t.TempDir()
	if err := uas.Start(); err != nil {
		t.Fatalf("sipp uas: %v", err)
	}
	t.Cleanup(func() { uas.Process.Kill(); uas.Wait() })
	r := &ladderRig{kam: startKamailio(t, `MCU_URI="sip:127.0.0.5:`+uasPort+`"`), sipp: sipp}
	mgmt := freeAddr(t)
	r.extPort = testpeer.FreePort(t)
	cfg := sipNodeConfig(mgmt, r.extPort, testpeer.FreePort(t), r.kam) + "  guest: {enabled: true, vmr_ranges: [\"1000-1999\"]}\n  capture: {max_calls: 50}\n"
	r.d = startDaemon(t, t.TempDir(), cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	return r
}

// call places one guest call to 1001 from sipp outside and waits for its end.
func (r *ladderRig) call(t *testing.T) {
	t.Helper()
	scen, _ := filepath.Abs("../internal/sipedge/testdata/sipp/ladder_call.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	call := exec.CommandContext(ctx, r.sipp, "-sf", scen, "-s", "1001", "-i", "127.0.0.1", "-p", strconv.Itoa(testpeer.FreePort(t)),
		"-m", "1", "-nostdin", "-timeout", "30s", "127.0.0.2:"+strconv.Itoa(r.extPort))
	call.Dir = t.TempDir()
	if out, err := call.CombinedOutput(); err != nil {
		t.Fatalf("sipp call: %v\n%s", err, out)
	}
}

// TestLadderAPI: portico serve in front of Kamailio and an inside sipp
// UAS; a guest call from sipp, watched by a live SIP trace, then read back
// through the API as JSON (both legs), SVG (parsed) and pcap (tshark), with
// its secrets masked; the OPTIONS ping and DNS diagnostics answer; an
// auditor reads the ladder but may not run diagnostics.
func TestLadderAPI(t *testing.T) {
	bins := testpeer.Require(t, "sipp", "kamailio", "tshark")
	tshark := bins[2]
	lr := startLadderRig(t, bins[0])
	d, kam := lr.d, lr.kam
	raw, _ := os.ReadFile("../internal/api/openapi.json")
	oc := newOpenAPIChecker(t, raw)
	c := newClient(t, d.url)
	c.record = func(method, path string, code int, body []byte) { oc.check(t, method, path, code, body) }
	c.csrf = true
	c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})

	// A live trace of the user called, for a few seconds.
	traced := make(chan []string, 1)
	req, _ := http.NewRequest("GET", d.url+"/api/v1/diagnostics/sip-trace?user=1001&seconds=4", nil)
	res, err := c.c.Do(req)
	if err != nil || res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("sip-trace: %v %v", err, res)
	}
	go func() {
		defer res.Body.Close()
		var got []string
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				got = append(got, data)
			}
		}
		traced <- got
	}()

	lr.call(t)
	var hist []struct{ ID string }
	waitFor(t, 10*time.Second, func() bool {
		c.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
		return len(hist) == 1
	})
	id := hist[0].ID

	var l struct {
		Parties  []struct{ Name, Address string }
		Messages []struct {
			Index                 int
			Interface, Direction  string
			Summary, Method, Text string
		}
	}
	base := "/api/v1/calls/" + id + "/ladder"
	waitFor(t, 10*time.Second, func() bool { // Portico's BYE inside may follow the call's record
		c.must(200, "GET", base, nil).json(t, &l)
		for _, m := range l.Messages {
			if m.Interface == "internal" && strings.HasPrefix(m.Summary, "BYE ") {
				return true
			}
		}
		return false
	})
	seen := map[string]bool{}
	for _, m := range l.Messages {
		seen[m.Interface+" "+m.Direction+" "+strings.Fields(m.Summary)[0]] = true
		for _, secret := range []string{"d41d8cd98f00b204e9800998ecf8427e", "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"} {
			if strings.Contains(m.Text, secret) {
				t.Errorf("message %d keeps %q", m.Index, secret)
			}
		}
	}
	for _, w := range []string{"external in INVITE", "external out 180", "external out 200", "external in ACK", "external in BYE",
		"internal out INVITE", "internal in 100", "internal in 180", "internal in 200", "internal out ACK", "internal out BYE"} {
		if !seen[w] {
			t.Errorf("ladder lacks %q: %v", w, seen)
		}
	}
	if len(l.Parties) != 4 || l.Parties[3].Address != kam {
		t.Errorf("parties %+v (inside party should be %s)", l.Parties, kam)
	}

	svg := c.must(200, "GET", base+".svg", nil)
	if ct := svg.header.Get("Content-Type"); ct != "image/svg+xml" || !strings.Contains(svg.header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("SVG served as %q, CSP %q", ct, svg.header.Get("Content-Security-Policy"))
	}
	arrows := 0
	dec := xml.NewDecoder(bytes.NewReader(svg.body))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "line" {
			for _, a := range se.Attr {
				if a.Name.Local == "class" && a.Value == "arrow" {
					arrows++
				}
			}
		}
	}
	pc := c.must(200, "GET", base+".pcap", nil)
	file := filepath.Join(t.TempDir(), "call.pcap")
	os.WriteFile(file, pc.body, 0o600)
	out, err := exec.Command(tshark, "-r", file, "-o", "udp.try_heuristic_first:TRUE", "--enable-heuristic", "sip_udp",
		"-T", "fields", "-e", "frame.protocols", "-e", "_ws.malformed").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	sipN, bad := 0, 0
	for _, line := range strings.Split(string(out), "\n") {
		f := append(strings.Split(line, "\t"), "")
		if strings.Contains(f[0], ":sip") {
			sipN++
		}
		if f[1] != "" {
			bad++
		}
	}
	// The BYE inside may be retransmitted between the three reads.
	if arrows < len(l.Messages) || sipN < len(l.Messages) || bad != 0 {
		t.Errorf("%d messages: %d arrows, %d SIP packets, %d malformed", len(l.Messages), arrows, sipN, bad)
	}
	c.must(404, "GET", "/api/v1/calls/no-such-call/ladder", nil)
	metrics := string(c.must(200, "GET", "/metrics", nil).body)
	for _, m := range []string{"portico_ladder_calls 1\n", "portico_ladder_messages_kept_total "} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %q", m)
		}
	}

	got := <-traced
	var invites int
	for _, data := range got {
		if strings.HasPrefix(data, "{\"dropped\"") {
			continue
		}
		var m struct{ Summary, Text string }
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("trace event %q: %v", data, err)
		}
		if strings.HasPrefix(m.Summary, "INVITE sip:1001@") {
			invites++
		}
		if strings.Contains(m.Text, "d41d8cd98f00b204e9800998ecf8427e") {
			t.Error("trace shows the digest response")
		}
	}
	if invites != 2 {
		t.Errorf("trace saw %d INVITEs to 1001, want 2 (both legs): %d events", invites, len(got))
	}

	// Diagnostics: OPTIONS to the call server, the resolver's view.
	var ping struct {
		Status      int
		StatusLine  string `json:"status_line"`
		Destination string
		RTTMs       float64 `json:"rtt_ms"`
	}
	c.must(200, "POST", "/api/v1/diagnostics/sip-options", map[string]string{}).json(t, &ping)
	if ping.Status != 200 || ping.StatusLine != "200 OK" || ping.Destination != kam || ping.RTTMs <= 0 {
		t.Errorf("OPTIONS ping %+v", ping)
	}
	c.must(200, "POST", "/api/v1/diagnostics/sip-options", map[string]string{"target": "sip:" + kam}).json(t, &ping)
	if ping.Status != 200 {
		t.Errorf("OPTIONS ping to a URI %+v", ping)
	}
	c.must(400, "POST", "/api/v1/diagnostics/sip-options", map[string]string{"target": "mailto:x@y"})
	var dns struct {
		Targets []struct{ Transport, Addr string }
	}
	c.must(200, "POST", "/api/v1/diagnostics/dns", map[string]string{"name": "sip:" + kam, "type": "SIP"}).json(t, &dns)
	if len(dns.Targets) != 1 || dns.Targets[0].Addr != kam || dns.Targets[0].Transport != "udp" {
		t.Errorf("SIP lookup %+v", dns)
	}
	c.must(400, "POST", "/api/v1/diagnostics/dns", map[string]string{"name": "example.com", "type": "MX"})

	c.must(201, "POST", "/api/v1/users", map[string]string{"name": "audrey", "password": "auditor-password", "role": "auditor"})
	aud := newClient(t, d.url)
	aud.record, aud.csrf = c.record, true
	aud.must(200, "POST", "/api/v1/login", map[string]string{"username": "audrey", "password": "auditor-password"})
	aud.must(200, "GET", base, nil)
	aud.must(403, "POST", "/api/v1/diagnostics/sip-options", map[string]string{})
	aud.must(403, "GET", "/api/v1/diagnostics/sip-trace?seconds=1", nil)
}
