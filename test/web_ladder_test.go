package test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestWebConsoleLadder drives the console in headless Chromium against
// `portico serve` in front of Kamailio and an inside sipp UAS: the
// diagnostics page pings Kamailio, resolves a SIP URI and traces a real
// guest call live; that call's page embeds its ladder diagram (both
// legs), a click on an arrow opens the full message, and the pcap link
// downloads a capture.
func TestWebConsoleLadder(t *testing.T) {
	bins := testpeer.Require(t, "chromium", "sipp", "kamailio")
	chromium, sipp := bins[0], bins[1]
	lr := startLadderRig(t, sipp)
	d, kam := lr.d, lr.kam
	api := newClient(t, d.url)
	api.csrf = true
	api.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})

	b, consoleErrs := newBrowser(t, chromium, d.url, shotDir(t))
	b.signIn("admin", adminPassword)
	if !strings.Contains(b.text("nav"), "Diagnostics") {
		t.Errorf("an admin's navigation lacks Diagnostics: %q", b.text("nav"))
	}
	b.open("/diagnostics")
	b.set("ping-target", "sip:"+kam)
	b.do(chromedp.Click(chromedp.ID("ping")))
	b.until(10*time.Second, `!!document.getElementById("ping-status")`)
	if got := b.text("#ping-status"); !strings.HasPrefix(got, "200") {
		t.Errorf("OPTIONS ping of Kamailio %s: status %q", kam, got)
	}
	b.set("dns-name", "sip:127.0.0.1:5070;transport=tcp")
	b.do(chromedp.Click(chromedp.ID("lookup")))
	b.until(10*time.Second, `!!document.getElementById("dns-result")`)
	if got := b.text("#dns-result"); !strings.Contains(got, "tcp 127.0.0.1:5070") {
		t.Errorf("DNS lookup of a numeric SIP URI: %q", got)
	}
	// A live trace of the user called, while the call is made.
	b.set("trace-user", "1001")
	b.do(chromedp.Click(chromedp.ID("trace-start")))
	b.until(10*time.Second, `document.getElementById("trace-state").textContent === "Running."`)

	lr.call(t)
	b.until(10*time.Second, `[...document.querySelectorAll("#trace summary")].some(s => s.textContent.includes("internal in") && s.textContent.includes(": 200 OK"))`)
	b.screenshot("diagnostics")
	b.do(chromedp.Click(chromedp.ID("trace-stop")))
	if got := b.text("#trace-state"); got != "Stopped." {
		t.Errorf("trace after stop: %q", got)
	}

	var hist []struct{ ID string }
	waitFor(t, 10*time.Second, func() bool {
		api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
		return len(hist) == 1
	})
	id := hist[0].ID
	base := "/api/v1/calls/" + id + "/ladder"
	var l struct {
		Messages []struct{ Interface, Summary string }
	}
	waitFor(t, 10*time.Second, func() bool { // Portico's BYE inside may follow the call's record
		api.must(200, "GET", base, nil).json(t, &l)
		for _, m := range l.Messages {
			if m.Interface == "internal" && strings.HasPrefix(m.Summary, "BYE ") {
				return true
			}
		}
		return false
	})
	// The SVG may be embedded by the console's pages.
	svg := api.must(200, "GET", base+".svg", nil)
	if xfo := svg.header.Get("X-Frame-Options"); strings.EqualFold(xfo, "DENY") {
		t.Errorf("ladder SVG: X-Frame-Options %q blocks the console's <object>", xfo)
	}
	if csp := svg.header.Get("Content-Security-Policy"); strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "frame-ancestors 'self'") {
		t.Errorf("ladder SVG CSP %q", csp)
	}

	b.open("/calls/" + id)
	const arrows = `[...document.querySelector("object.ladder").contentDocument.querySelectorAll("a.msg")]`
	b.until(10*time.Second, `(() => { const o = document.querySelector("object.ladder"); return !!(o && o.contentDocument && o.contentDocument.querySelector("a.msg")) })()`)
	// Each arrow of the chart, by its message's interface and direction
	// (the chart may hold retransmissions kept after the page was drawn).
	got := b.eval(arrows + `.map(a => document.getElementById(a.id.replace("arrow", "msg"))).filter(m => m).map(m => m.querySelector("summary").textContent).join("\n")`)
	seen := map[string]bool{}
	for _, line := range strings.Split(got, "\n") {
		f := strings.Fields(line)
		i := strings.Index(line, ": ")
		if len(f) < 2 || i < 0 {
			t.Fatalf("arrow line %q", line)
		}
		seen[f[0]+" "+f[1]+" "+strings.Fields(line[i+2:])[0]] = true
	}
	for _, w := range []string{"external in INVITE", "external out 100", "external out 180", "external out 200", "external in ACK", "external in BYE",
		"internal out INVITE", "internal in 100", "internal in 180", "internal in 200", "internal out ACK", "internal out BYE"} {
		if !seen[w] {
			t.Errorf("the ladder lacks an arrow %q:\n%s", w, got)
		}
	}
	// A real click on the inside leg's 180 arrow opens that message.
	n := b.eval(arrows + `.find(a => document.getElementById(a.id.replace("arrow", "msg")).querySelector("summary").textContent.match(/^internal in .*: 180 /)).id.replace("arrow-", "")`)
	xy := b.eval(`(() => { const o = document.querySelector("object.ladder"), a = o.contentDocument.getElementById("arrow-` + n + `").querySelector("line");
		a.scrollIntoView({block: "center"}); const r = a.getBoundingClientRect(), p = o.getBoundingClientRect();
		return (p.left + o.clientLeft + r.left + r.width / 2) + " " + (p.top + o.clientTop + r.top + r.height / 2) })()`)
	var x, y float64
	if _, err := fmt.Sscan(xy, &x, &y); err != nil {
		t.Fatalf("arrow position %q: %v", xy, err)
	}
	b.do(chromedp.MouseClickXY(x, y))
	b.until(10*time.Second, `document.getElementById("msg-`+n+`").open`)
	if got := b.text("#msg-" + n + " pre"); !strings.HasPrefix(got, "SIP/2.0 180") || !strings.Contains(got, "Call-ID:") {
		t.Errorf("message %s opened by its arrow: %q", n, got)
	}
	if open := b.eval(`String(document.querySelectorAll("#messages details[open]").length)`); open != "1" {
		t.Errorf("%s messages open after one click", open)
	}
	b.screenshot("call-ladder")

	// The pcap link downloads a capture (libpcap magic, then records).
	href := b.eval(`document.querySelector("a[download]").getAttribute("href")`)
	res, err := b.sessionClient().Get(d.url + href)
	if err != nil {
		t.Fatal(err)
	}
	pcap, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") || len(pcap) < 24+16 ||
		!bytes.Equal(pcap[:4], binary.LittleEndian.AppendUint32(nil, 0xa1b2c3d4)) && !bytes.Equal(pcap[:4], binary.BigEndian.AppendUint32(nil, 0xa1b2c3d4)) {
		t.Errorf("pcap download %s: status %d, %q, %d bytes % x", href, res.StatusCode, res.Header.Get("Content-Disposition"), len(pcap), pcap[:min(len(pcap), 4)])
	}
	b.signOut()
	for _, e := range consoleErrs() {
		t.Errorf("browser console: %s", e)
	}
}
