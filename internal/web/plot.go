package web

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"net/http"
	"strings"
	"time"
)

// series is one line of a plot.
type series struct {
	Label string
	Color string
	Value func(sample) float64
}

// plots are the dashboard's charts, by name.
var plots = map[string]struct {
	Title  string
	Unit   string
	Series []series
}{
	"calls.svg": {"Active calls", "calls", []series{
		{"SIP", "#1f77b4", func(s sample) float64 { return s.SIPCalls }},
		{"H.323", "#ff7f0e", func(s sample) float64 { return s.H323Calls }},
	}},
	"registrations.svg": {"Registrations", "bindings", []series{
		{"SIP", "#1f77b4", func(s sample) float64 { return s.SIPRegs }},
		{"H.323", "#ff7f0e", func(s sample) float64 { return s.H323Regs }},
	}},
	"relay.svg": {"Media relay", "Mbit/s", []series{
		{"Mbit/s", "#2ca02c", func(s sample) float64 { return s.RelayMbps }},
	}},
	"packets.svg": {"Media relay", "packets/s", []series{
		{"packets/s", "#9467bd", func(s sample) float64 { return s.RelayPPS }},
	}},
	"loss.svg": {"Media relay loss", "lost packets/s", []series{
		{"lost packets/s", "#e377c2", func(s sample) float64 { return s.RelayLostPS }},
	}},
	"turn.svg": {"TURN and access proxy", "count", []series{
		{"TURN allocations", "#d62728", func(s sample) float64 { return s.TURNAllocs }},
		{"proxy connections", "#8c564b", func(s sample) float64 { return s.ProxyConns }},
	}},
}

func (s *Server) plot(w http.ResponseWriter, r *http.Request, u user) {
	p, ok := plots[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Write(drawPlot(p.Title, p.Unit, p.Series, s.ring.all(), s.deps.Now(), s.cfg.Window))
}

// drawPlot draws samples over the window ending at now as an SVG line chart.
func drawPlot(title, unit string, ss []series, samples []sample, now time.Time, window time.Duration) []byte {
	const W, H, left, right, top, bottom = 640.0, 200.0, 48.0, 12.0, 28.0, 24.0
	pw, ph := W-left-right, H-top-bottom
	hi := 0.0
	for _, smp := range samples {
		for _, se := range ss {
			hi = math.Max(hi, se.Value(smp))
		}
	}
	hi = niceCeil(hi)
	start := now.Add(-window)
	x := func(t time.Time) float64 {
		return left + pw*math.Min(1, math.Max(0, t.Sub(start).Seconds()/window.Seconds()))
	}
	y := func(v float64) float64 { return top + ph - ph*v/hi }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s (%s), last %s" font-family="sans-serif" font-size="11">`, W, H, html.EscapeString(title), html.EscapeString(unit), window)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="#fff"/>`, W, H)
	fmt.Fprintf(&b, `<text x="%.0f" y="16" font-size="13" font-weight="bold">%s</text>`, left, html.EscapeString(title+" ("+unit+")"))
	for i := 0; i <= 4; i++ {
		v := hi * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, left, left+pw, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-4, y(v)+4, label(v))
	}
	for i := 0; i <= 4; i++ {
		t := start.Add(window * time.Duration(i) / 4)
		anchor := "middle"
		if i == 4 {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="%s">%s</text>`, x(t), H-6, anchor, t.UTC().Format("15:04"))
	}
	lx := left + pw
	for i := len(ss) - 1; i >= 0; i-- {
		se := ss[i]
		lx -= float64(len(se.Label))*6.5 + 24
		fmt.Fprintf(&b, `<rect x="%.1f" y="8" width="10" height="10" fill="%s"/><text x="%.1f" y="17">%s</text>`, lx, se.Color, lx+14, html.EscapeString(se.Label))
		var pts []string
		for _, smp := range samples {
			if smp.T.Before(start) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(smp.T), y(se.Value(smp))))
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, se.Color, strings.Join(pts, " "))
		}
	}
	if len(samples) == 0 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#888">no samples yet</text>`, left+pw/2, top+ph/2)
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func label(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}
