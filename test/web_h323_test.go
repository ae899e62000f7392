package test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestWebConsoleH323 drives the console against portico serve with the
// H.323 edge in front of the simulators of h323Rig (stand-ins: Debian has
// no H.323 gatekeeper or endpoint a test can drive): an H.323 call shows in
// the dashboard's count and the live table, its page shows both legs (the
// inside one to the routed gatekeeper) and the relay's per-stream
// counters, and an admin forgets an H.323 registration.
func TestWebConsoleH323(t *testing.T) {
	chromium := testpeer.Require(t, "chromium")[0]
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := startH323Rig(t, ctx)
	b, consoleErrs := newBrowser(t, chromium, r.d.url, shotDir(t))
	b.signIn("admin", adminPassword)

	r.connect(t, ctx, r.room, r.inside, "2001", h323test.CallOptions{FastStart: true})
	var calls []struct {
		ID      string
		Streams []struct {
			PacketsIn  uint64 `json:"packets_in"`
			PacketsOut uint64 `json:"packets_out"`
		}
	}
	waitFor(t, 10*time.Second, func() bool {
		r.c.must(200, "GET", "/api/v1/calls", nil).json(t, &calls)
		return len(calls) == 1 && len(calls[0].Streams) > 0 && calls[0].Streams[0].PacketsIn >= 10 && calls[0].Streams[0].PacketsOut >= 10
	})
	id := calls[0].ID
	b.until(20*time.Second, `document.querySelector('[data-g="h323_calls"]').textContent === "1"`)

	b.open("/calls")
	b.until(10*time.Second, `[...document.querySelectorAll("#calls tbody tr")].some(tr => tr.textContent.includes("`+id+`") && tr.textContent.includes("h323") && tr.textContent.includes("room-7"))`)
	b.screenshot("calls-h323")
	b.eval(`(() => { setTimeout(() => document.querySelector('#calls tbody a[href="/calls/` + id + `"]').click()); return "" })()`)
	b.until(10*time.Second, `location.pathname === "/calls/`+id+`" && !!document.getElementById("legs")`)
	legs := b.eval(`[...document.querySelectorAll("#legs tbody tr")].map(tr => [...tr.children].map(td => td.textContent).join("|")).join("\n")`)
	if !strings.Contains(legs, "outside|caller|room-7|127.0.0.6:") || !strings.Contains(legs, "inside|callee|2001|127.0.0.4:") || !strings.Contains(legs, "|127.0.0.2:") || !strings.Contains(legs, "|127.0.0.3:") {
		t.Errorf("call legs:\n%s", legs)
	}
	cells := b.eval(`[...document.querySelector("#streams tbody tr").children].map(td => td.textContent).join("|")`)
	f := strings.Split(cells, "|")
	if len(f) != 9 {
		t.Fatalf("stream row %q", cells)
	}
	in, _ := strconv.Atoi(f[4])
	out, _ := strconv.Atoi(f[5])
	if in < 10 || out < 10 || !strings.Contains(f[2], "127.0.0.2:") || !strings.Contains(f[3], "127.0.0.3:") {
		t.Errorf("stream row %q", cells)
	}
	if got := b.text("dl.facts"); !strings.Contains(got, "h323") || !strings.Contains(got, "confirmed") {
		t.Errorf("call facts %q", got)
	}
	b.screenshot("call-h323")

	// Forget room-7's registration from the registrations page.
	b.open("/registrations")
	b.until(10*time.Second, `!!document.querySelector('#h323_registrations button[aria-label="Forget the H.323 registration of room-7"]')`)
	// The live stream may rebuild the row at any time: find and click the
	// button in one task.
	b.eval(`(() => { setTimeout(() => document.querySelector('#h323_registrations button[aria-label="Forget the H.323 registration of room-7"]').click()); return "" })()`)
	b.until(10*time.Second, `!!document.querySelector(".flash.ok") && document.querySelector(".flash.ok").textContent.includes("room-7 forgotten")`)
	waitFor(t, 10*time.Second, func() bool { _, ok := r.gk.Registered("room-7"); return !ok })
	b.signOut()
	for _, e := range consoleErrs() {
		t.Errorf("browser console: %s", e)
	}
}
