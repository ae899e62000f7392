package ladder

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
)

// Layout of the chart, in SVG user units.
const (
	svgLeft    = 90  // time column
	svgLane    = 230 // between lifelines
	svgTop     = 60  // lifeline heads
	svgRow     = 34  // per message
	svgMaxText = 60  // characters of a summary drawn
)

// SVG writes l as a message sequence chart: a lifeline per party, an
// arrow per message labelled with its summary and the time since the
// first message, each arrow a link to "#msg-N" (N is Message.Index), which
// the console's message list and the JSON's index name. Every text from
// the wire is escaped.
func SVG(w io.Writer, l Ladder) error {
	var b bytes.Buffer
	width := svgLeft + svgLane*(len(l.Parties)-1) + 2*svgLeft
	height := svgTop + 30 + svgRow*len(l.Messages) + 30
	x := func(p int) int { return svgLeft + svgLeft/2 + svgLane*p }
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>` + "\n")
	fmt.Fprintf(&b, `<title>Call %s</title>`+"\n", esc(l.Call))
	bottom := height - 20
	for i, p := range l.Parties {
		fmt.Fprintf(&b, `<g class="party" id="party-%d"><text x="%d" y="20" text-anchor="middle" font-weight="bold">%s</text><text x="%d" y="36" text-anchor="middle" fill="#555">%s</text>`,
			i, x(i), esc(p.Name), x(i), esc(p.Address))
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999" stroke-dasharray="4 3"/></g>`+"\n", x(i), svgTop-12, x(i), bottom)
	}
	var t0 = l.Messages
	for _, m := range l.Messages {
		y := svgTop + 20 + svgRow*m.Index
		x1, x2 := x(m.From), x(m.To)
		dx := 0
		if x2 > x1 {
			dx = -1
		} else {
			dx = 1
		}
		label := m.Summary
		if r := []rune(label); len(r) > svgMaxText {
			label = string(r[:svgMaxText-1]) + "…"
		}
		color := "#1f5fa8"
		if m.Direction == Out.String() {
			color = "#2a7a2a"
		}
		rel := m.Time.Sub(t0[0].Time).Seconds()
		fmt.Fprintf(&b, `<a class="msg" id="arrow-%d" href="#msg-%d" xlink:href="#msg-%d"><title>%s</title>`, m.Index, m.Index, m.Index, esc(fmt.Sprintf("%d %s %s %s→%s", m.Index, m.Transport, m.Summary, m.Local, m.Remote)))
		fmt.Fprintf(&b, `<text x="8" y="%d" fill="#555">+%.3fs</text>`, y+4, rel)
		fmt.Fprintf(&b, `<line class="arrow" x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.5" marker-end="url(#arrow)"/>`, x1, y, x2+dx, y, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text></a>`+"\n", (x1+x2)/2, y-5, color, esc(label))
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// esc escapes s for XML text and attribute values; characters XML 1.0
// cannot carry at all become U+FFFD.
func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
