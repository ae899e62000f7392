package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/portico-edge/portico/internal/testpeer"
)

// registerHold registers alice through Portico, holds the binding for 12s
// (while the console is watched) and unregisters.
const registerHold = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register and hold">
  <send retrans="500"><![CDATA[
REGISTER sip:portico.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@portico.test>;tag=[pid]SIPpTag00[call_number]
To: <sip:alice@portico.test>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 300
User-Agent: sipp-console-test
Content-Length: 0

]]></send>
  <recv response="200"/>
  <pause milliseconds="12000"/>
  <send retrans="500"><![CDATA[
REGISTER sip:portico.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@portico.test>;tag=[pid]SIPpTag00[call_number]
To: <sip:alice@portico.test>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 0
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
`

// browser drives one headless Chromium tab against the console.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	shot string // screenshot directory
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// set gives a form control a value as typing would (an input event).
func (b *browser) set(id, value string) {
	b.t.Helper()
	v, _ := json.Marshal(value)
	b.eval(fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %s; e.dispatchEvent(new Event("input")); return "" })()`, id, v))
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base + path))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return s
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("browser: eval %s: %v", js, err)
	}
	return s
}

// until evaluates the JavaScript condition until it is true.
func (b *browser) until(d time.Duration, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 2000)`))
			cancel()
			b.t.Fatalf("browser: %s not true within %v (last error %v); the page:\n%s", cond, d, err, page)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// screenshot saves the page at the wide and at a narrow viewport, and
// checks what every page must: each form control has a label, and the
// page does not overflow the narrow viewport sideways.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	unlabelled := b.eval(`[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map(e => e.id || e.name).join(",")`)
	if unlabelled != "" {
		b.t.Errorf("%s: form controls without a label: %s", name, unlabelled)
	}
	for _, vp := range []struct {
		suffix string
		w, h   int64
	}{{"", 1280, 800}, {"-narrow", 390, 844}} {
		b.do(chromedp.EmulateViewport(vp.w, vp.h))
		if vp.suffix != "" {
			over := b.eval(`String(document.documentElement.scrollWidth - window.innerWidth)`)
			if n, _ := strconv.Atoi(over); n > 1 {
				b.t.Errorf("%s: page is %dpx wider than a %dpx viewport", name, n, vp.w)
			}
		}
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(b.shot, name+vp.suffix+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do(chromedp.EmulateViewport(1280, 800))
}

func (b *browser) signIn(user, password string) {
	b.t.Helper()
	b.open("/")
	b.do(chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Submit(chromedp.ID("password")))
	b.until(10*time.Second, `location.pathname === "/" && !!document.getElementById("dashboard")`)
}

func (b *browser) signOut() {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS("form.who button")))
	b.until(10*time.Second, `location.pathname === "/login"`)
}

// sessionClient is a Go HTTP client holding the browser's cookies.
func (b *browser) sessionClient() *http.Client {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/"}})
	if err != nil {
		b.t.Fatal(err)
	}
	c := insecureClient(nil)
	var hdr []string
	for _, ck := range res.Cookies {
		hdr = append(hdr, ck.Name+"="+ck.Value)
	}
	c.Transport = cookieTransport{c.Transport, strings.Join(hdr, "; ")}
	return c
}

type cookieTransport struct {
	rt     http.RoundTripper
	cookie string
}

func (c cookieTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Cookie", c.cookie)
	return c.rt.RoundTrip(r)
}

// testCert is a self-signed certificate and key (PEM, one file) that
// expires in days.
func testCert(t *testing.T, cn string, days int) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Duration(days) * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := x509.MarshalPKCS8PrivateKey(key)
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})...)
}

// shotDir is where screenshots go: $PORTICO_UI_SCREENSHOTS, else the
// test's artifact directory.
func shotDir(t *testing.T) string {
	shots := os.Getenv("PORTICO_UI_SCREENSHOTS")
	if shots == "" {
		shots = t.ArtifactDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	return shots
}

// newBrowser starts headless Chromium on base. errs stops it and returns
// the CSP violations and script errors its console showed.
func newBrowser(t *testing.T, chromium, base, shots string) (b *browser, errs func() []string) {
	t.Helper()
	// No interface may come or go while Chromium loads a page.
	testpeer.LockNetwork(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(1280, 800))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	b = &browser{t: t, ctx: bctx, base: base, shot: shots}
	console := chromedp.Console(bctx)
	var consoleErrs []string
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for msg, err := range console {
			if err != nil {
				return
			}
			if msg.IsException() || strings.Contains(msg.Text, "Content Security Policy") {
				consoleErrs = append(consoleErrs, msg.String())
			}
		}
	}()
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return b, func() []string {
		cancelB()
		<-consoleDone
		return consoleErrs
	}
}

// TestWebConsole drives the console in headless Chromium against a real
// `portico serve` with the SIP edge in front of Kamailio: sign-in, a sipp
// registration appearing live, the config editor's field errors, save and
// rollback, a certificate upload, CSV export, an auditor refused by the
// server, and the security headers and cookie flags.
func TestWebConsole(t *testing.T) {
	peers := testpeer.Require(t, "chromium", "sipp", "kamailio")
	chromium, sipp := peers[0], peers[1]
	kam := startKamailio(t)
	dir := t.TempDir()
	mgmt := freeAddr(t)
	extPort, intPort := testpeer.FreePort(t), testpeer.FreePort(t)
	cfg := sipNodeConfig(mgmt, extPort, intPort, kam)
	d := startDaemon(t, dir, cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	api := newClient(t, d.url)
	api.csrf = true
	api.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	const auditorPassword = "auditor-password-1"
	api.must(201, "POST", "/api/v1/users", map[string]string{"name": "audrey", "password": auditorPassword, "role": "auditor"})

	shots := shotDir(t)

	// Headers and cookie flags, as any client sees them.
	plain := insecureClient(nil)
	plain.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := plain.Get(d.url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page0, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline script", csp)
	}
	if xfo := resp.Header.Get("X-Frame-Options"); xfo != "DENY" {
		t.Errorf("X-Frame-Options %q", xfo)
	}
	if regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]|\son[a-z]+\s*=`).Match(page0) {
		t.Errorf("sign-in page has inline script:\n%s", page0)
	}
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindSubmatch(page0)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in form:\n%s", page0)
	}
	pre := resp.Cookies()
	// A sign-in without the form's token is refused.
	form := url.Values{"username": {"admin"}, "password": {adminPassword}}
	if r, err := plain.PostForm(d.url+"/login", form); err != nil || r.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in without CSRF token: %v %v, want 403", r.StatusCode, err)
	}
	form.Set("csrf", string(m[1]))
	req, _ := http.NewRequest("POST", d.url+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range pre {
		req.AddCookie(c)
	}
	resp, err = plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: status %d", resp.StatusCode)
	}
	var session string
	for _, sc := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "portico_session=") {
			session = sc
		}
	}
	for _, flag := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(session, flag) {
			t.Errorf("session cookie %q lacks %s", session, flag)
		}
	}

	// One browser for the whole test.
	b, consoleErrs := newBrowser(t, chromium, d.url, shots)
	bctx := b.ctx
	b.open("/")
	b.until(10*time.Second, `location.pathname === "/login"`)
	b.screenshot("login")
	b.signIn("admin", adminPassword)
	ctx, cancel := context.WithTimeout(bctx, 10*time.Second)
	ck, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{d.url + "/"}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ck.Cookies {
		if c.Name == "portico_session" && (!c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteStrict) {
			t.Errorf("browser's session cookie: httpOnly %v secure %v sameSite %v", c.HTTPOnly, c.Secure, c.SameSite)
		}
	}

	// A registration appears on the open dashboard without a reload.
	if got := b.text("#sip-regs"); got != "0" {
		t.Fatalf("SIP registrations before sipp: %q", got)
	}
	b.eval(`window.__sameDocument = "yes"`)
	scen := filepath.Join(t.TempDir(), "register-hold.xml")
	os.WriteFile(scen, []byte(registerHold), 0o644)
	sctx, scancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer scancel()
	reg := exec.CommandContext(sctx, sipp, "-sf", scen, "-i", "127.0.0.1", "-p", strconv.Itoa(testpeer.FreePort(t)), "-m", "1", "-nostdin", "-timeout", "60s", "-trace_err", "127.0.0.2:"+strconv.Itoa(extPort))
	reg.Dir = t.TempDir()
	var sout bytes.Buffer
	reg.Stdout, reg.Stderr = &sout, &sout
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	b.until(15*time.Second, `document.getElementById("sip-regs").textContent === "1" && window.__sameDocument === "yes"`)
	b.screenshot("dashboard")
	// The live registrations page shows it; search filters it in place.
	b.open("/registrations")
	b.until(10*time.Second, `document.querySelector("#registrations tbody").textContent.includes("alice@portico.test")`)
	b.do(chromedp.SendKeys(chromedp.ID("q-regs"), "nobody-such"))
	b.until(5*time.Second, `!document.querySelector("#registrations tbody").textContent.includes("alice@portico.test")`)
	b.set("q-regs", "alice")
	b.until(5*time.Second, `document.querySelector("#registrations tbody").textContent.includes("sipp-console-test")`)
	b.screenshot("registrations")
	// An admin forgets the binding: gone from the edge at once.
	b.do(chromedp.Click(chromedp.CSS(`#registrations form[action="/registrations/forget"] button`)))
	b.until(10*time.Second, `document.querySelector(".flash.ok") && document.querySelector(".flash.ok").textContent.includes("forgotten")`)
	b.until(5*time.Second, `!document.querySelector("#registrations tbody").textContent.includes("alice@portico.test")`)
	var live []struct{ AOR string }
	api.must(200, "GET", "/api/v1/registrations", nil).json(t, &live)
	if len(live) != 0 {
		t.Errorf("live registrations after forget: %+v", live)
	}
	if err := reg.Wait(); err != nil {
		t.Fatalf("sipp: %v\n%s", err, sout.String())
	}
	b.open("/calls")
	b.screenshot("calls")

	// History of registrations, exported as CSV and parsed.
	b.open("/history/registrations?party=alice")
	b.until(10*time.Second, `document.querySelector("#history-registrations tbody").textContent.includes("unregistered")`)
	b.screenshot("history-registrations")
	href := b.eval(`document.getElementById("export-csv").getAttribute("href")`)
	sc := b.sessionClient()
	resp, err = sc.Get(d.url + "/history/registrations" + href)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CSV export: status %d, %v", resp.StatusCode, err)
	}
	kinds, forgotten := map[string]bool{}, false
	for _, r := range recs[1:] {
		forgotten = forgotten || r[8] == "binding forgotten by an administrator"
		if r[2] != "sip:alice@portico.test" && !strings.Contains(r[2], "alice@portico.test") {
			t.Errorf("CSV row of another party: %q", r)
		}
		kinds[r[6]] = true
	}
	if strings.Join(recs[0], ",") != "time,protocol,aor,contact,source,transport,kind,expires,reason,count" || !kinds["registered"] || !kinds["unregistered"] || !forgotten {
		t.Errorf("CSV export: header %q, kinds %v", recs[0], kinds)
	}
	// A form without the CSRF token is refused even for an admin session.
	resp, err = sc.PostForm(d.url+"/certificates/none/delete", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("delete without CSRF token: status %d, want 403", resp.StatusCode)
	}
	// A guest call Portico refuses lands in call history; its page embeds
	// the ladder diagram and links the pcap.
	guest, _ := filepath.Abs("testdata/sipp/guest_flood.xml")
	gout, err := exec.CommandContext(sctx, sipp, "-sf", guest, "-i", "127.0.0.1", "-p", strconv.Itoa(testpeer.FreePort(t)), "-m", "1", "-nostdin", "-timeout", "20s", "127.0.0.2:"+strconv.Itoa(extPort)).CombinedOutput()
	if err != nil {
		t.Fatalf("sipp guest call: %v\n%s", err, gout)
	}
	var calls []struct{ ID, Disposition string }
	waitFor(t, 10*time.Second, func() bool {
		api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &calls)
		return len(calls) == 1
	})
	resp, err = sc.Get(d.url + "/history/calls?export=csv&protocol=sip&type=guest")
	if err != nil {
		t.Fatal(err)
	}
	recs, err = csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || len(recs) != 2 || recs[0][0] != "id" || recs[1][0] != calls[0].ID || recs[1][11] != "403" || recs[1][12] != calls[0].Disposition {
		t.Errorf("call history CSV: %q %v", recs, err)
	}
	b.open("/history/calls")
	b.screenshot("history-calls")
	b.do(chromedp.Click(chromedp.CSS("#history-calls tbody a")))
	b.until(10*time.Second, `location.pathname.startsWith("/calls/") && !!document.querySelector("object.ladder")`)
	if got := b.eval(`document.querySelector("object.ladder").getAttribute("data") + " " + document.querySelector("a[download]").getAttribute("href")`); got != "/api/v1/calls/"+calls[0].ID+"/ladder.svg /api/v1/calls/"+calls[0].ID+"/ladder.pcap" {
		t.Errorf("call page ladder and pcap: %q", got)
	}
	if got := b.text("dl.facts"); !strings.Contains(got, "403") || !strings.Contains(got, "portico") {
		t.Errorf("call page facts: %q", got)
	}
	b.screenshot("call")

	// The config editor: an invalid value is shown at its field, nothing saved.
	var active struct {
		Version  int64
		Document string
	}
	api.must(200, "GET", "/api/v1/config", nil).json(t, &active)
	b.open("/config")
	doc := b.eval(`document.getElementById("document").value`)
	if !strings.Contains(doc, "drain_timeout: 5s") {
		t.Fatalf("editor holds %q", doc)
	}
	b.set("document", strings.Replace(doc, "drain_timeout: 5s", "drain_timeout: banana", 1))
	b.do(chromedp.Click(chromedp.ID("validate")))
	b.until(10*time.Second, `!!document.querySelector(".field-error")`)
	fe := b.text(".field-error")
	if !strings.Contains(fe, "node.drain_timeout") || !strings.Contains(fe, "banana") {
		t.Errorf("field error %q", fe)
	}
	if prev := b.eval(`document.querySelector(".field-error").previousElementSibling.textContent`); !strings.Contains(prev, "drain_timeout: banana") {
		t.Errorf("the field error is not under its line: %q", prev)
	}
	b.screenshot("config-error")
	var after struct{ Version int64 }
	api.must(200, "GET", "/api/v1/config", nil).json(t, &after)
	if after.Version != active.Version {
		t.Fatalf("validation stored a version: %d → %d", active.Version, after.Version)
	}
	// Saving the invalid value is refused by the server with the same error.
	b.do(chromedp.Click(chromedp.ID("save")))
	b.until(10*time.Second, `!!document.querySelector(".field-error") && document.querySelector(".flash.err").textContent.includes("refused (422)")`)
	// A valid change is saved and applied; then rolled back in one click.
	b.open("/config")
	b.set("document", strings.Replace(doc, "name: test-node", "name: renamed-node", 1))
	b.set("comment", "rename from the console")
	b.do(chromedp.Click(chromedp.ID("save")))
	b.until(10*time.Second, `document.querySelector(".flash.ok") && document.querySelector(".flash.ok").textContent.includes("saved and applied")`)
	// The node keeps the name it started with (a node's identity picks its
	// part of a cluster document); the active document has the new one.
	var renamed struct{ Document string }
	api.must(200, "GET", "/api/v1/config", nil).json(t, &renamed)
	if !strings.Contains(renamed.Document, "name: renamed-node") {
		t.Fatalf("active document after save from the console: %q", renamed.Document)
	}
	b.screenshot("config")
	b.open(fmt.Sprintf("/config/diff?a=%d&b=%d", active.Version, active.Version+1))
	if got := b.text("#diff"); !strings.Contains(got, "−   name: test-node\n+   name: renamed-node") || strings.Contains(got, "−   drain_timeout") {
		t.Errorf("diff: %q", got)
	}
	b.screenshot("config-diff")
	b.open("/config")
	b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Roll back to version %d"]`, active.Version))))
	b.until(10*time.Second, `document.querySelector(".flash.ok") && document.querySelector(".flash.ok").textContent.includes("rolled back")`)
	api.must(200, "GET", "/api/v1/config", nil).json(t, &renamed)
	if !strings.Contains(renamed.Document, "name: test-node") || strings.Contains(renamed.Document, "renamed-node") {
		t.Errorf("active document after rollback: %q", renamed.Document)
	}
	b.open("/audit")
	if got := b.text("#audit tbody"); !strings.Contains(got, "config.replace") {
		t.Errorf("audit log lacks the console's changes: %q", got)
	}
	b.screenshot("audit")

	// Certificates: upload a PEM (certificate and key) expiring in 10 days.
	pemFile := filepath.Join(t.TempDir(), "edge.pem")
	os.WriteFile(pemFile, testCert(t, "edge.portico.test", 10), 0o600)
	b.open("/certificates")
	b.do(chromedp.SendKeys(chromedp.ID("cert-name"), "edge"),
		chromedp.SetUploadFiles(chromedp.ID("cert-file"), []string{pemFile}),
		chromedp.Click(chromedp.ID("cert-upload")))
	b.until(10*time.Second, `document.querySelector(".flash.ok") && document.querySelector("#certificates tbody").textContent.includes("edge.portico.test")`)
	if got := b.text("#certificates tbody"); !strings.Contains(got, "days left") {
		t.Errorf("certificate expiring in 10 days not flagged: %q", got)
	}
	b.screenshot("certificates")
	b.open("/")
	b.until(10*time.Second, `document.getElementById("certwarn").textContent.includes("edge")`)
	b.open("/users")
	b.screenshot("users")
	b.open("/maintenance")
	b.screenshot("maintenance")

	// An auditor sees the pages but the server refuses a change.
	b.signOut()
	b.signIn("audrey", auditorPassword)
	b.open("/config")
	if n := b.eval(`String(document.querySelectorAll("#save").length)`); n != "0" {
		t.Errorf("auditor sees a save button")
	}
	api.must(200, "GET", "/api/v1/config", nil).json(t, &active)
	// Submit the editor's form to the save action anyway.
	b.set("document", strings.Replace(doc, "name: test-node", "name: auditor-node", 1))
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#document").form.submit()`))
	b.until(10*time.Second, `document.title.startsWith("Refused") && document.body.textContent.includes("403")`)
	b.screenshot("auditor-refused")
	api.must(200, "GET", "/api/v1/config", nil).json(t, &after)
	if after.Version != active.Version {
		t.Errorf("an auditor's save changed the configuration: version %d → %d", active.Version, after.Version)
	}
	// The same through a bare HTTP client with the auditor's session and a
	// valid CSRF token: 403 from the server.
	ac := b.sessionClient()
	b.open("/certificates")
	tok := b.eval(`document.querySelector("form.who input[name=csrf]").value`)
	resp, err = ac.PostForm(d.url+"/certificates/edge/delete", url.Values{"csrf": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor deleting a certificate: status %d, want 403", resp.StatusCode)
	}
	var certs []struct{ Name string }
	api.must(200, "GET", "/api/v1/certificates", nil).json(t, &certs)
	found := false
	for _, c := range certs {
		found = found || c.Name == "edge"
	}
	if !found {
		t.Error("the auditor's delete removed the certificate")
	}
	b.signOut()
	for _, e := range consoleErrs() {
		t.Errorf("browser console: %s", e)
	}
}
