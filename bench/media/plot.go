package main

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

var palette = map[string]color.RGBA{
	"portico":   {0x1f, 0x77, 0xb4, 0xff},
	"rtpengine": {0xd6, 0x27, 0x28, 0xff},
	"bare":      {0x2c, 0xa0, 0x2c, 0xff},
}

type canvas struct{ img *image.RGBA }

func (c canvas) text(x, y int, s string, col color.Color) {
	d := font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func (c canvas) line(x0, y0, x1, y1 int, col color.Color) {
	dx, dy := x1-x0, y1-y0
	n := max(abs(dx), abs(dy), 1)
	for i := 0; i <= n; i++ {
		x, y := x0+dx*i/n, y0+dy*i/n
		c.img.Set(x, y, col)
		c.img.Set(x+1, y, col)
		c.img.Set(x, y+1, col)
	}
}

func (c canvas) dot(x, y int, col color.Color, filled bool) {
	for dx := -3; dx <= 3; dx++ {
		for dy := -3; dy <= 3; dy++ {
			r := dx*dx + dy*dy
			if r <= 10 && (filled || r >= 5) {
				c.img.Set(x+dx, y+dy, col)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// writePlot draws p99 latency against offered rate for every system, one
// panel per packet size; filled dots pass the rule, hollow ones fail it.
func writePlot(path string, rs []result) error {
	const w, h, pw = 1100, 460, 520
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	c := canvas{img}
	grey := color.RGBA{0xcc, 0xcc, 0xcc, 0xff}
	black := color.Black
	panels := []struct {
		title string
		get   func(r result) []step
	}{
		{"172-byte packets", func(r result) []step { return r.Audio }},
		{"1,200-byte packets", func(r result) []step { return r.Big }},
	}
	for pi, p := range panels {
		x0, y0 := 60+pi*(pw+30), 40
		pwid, ph := pw-40, h-110
		maxRate := 1.0
		for _, r := range rs {
			for _, s := range p.get(r) {
				maxRate = math.Max(maxRate, s.Offered)
			}
		}
		maxRate = math.Ceil(maxRate/50000) * 50000
		const maxMs = 20.0
		xp := func(v float64) int { return x0 + int(v/maxRate*float64(pwid)) }
		yp := func(ms float64) int {
			ms = math.Min(math.Max(ms, 0), maxMs)
			return y0 + ph - int(ms/maxMs*float64(ph))
		}
		c.text(x0, y0-15, p.title+": p99 latency vs offered rate", black)
		for ms := 0.0; ms <= maxMs; ms += 5 {
			c.line(x0, yp(ms), x0+pwid, yp(ms), grey)
			c.text(x0-30, yp(ms)+4, strconv.Itoa(int(ms)), black)
		}
		for v := 0.0; v <= maxRate; v += maxRate / 5 {
			c.line(xp(v), y0, xp(v), y0+ph, grey)
			c.text(xp(v)-14, y0+ph+16, strconv.Itoa(int(v/1000))+"k", black)
		}
		c.line(x0, yp(5), x0+pwid, yp(5), color.RGBA{0xff, 0x99, 0x00, 0xff})
		c.text(x0+pwid-90, yp(5)-4, "5 ms rule", color.RGBA{0xff, 0x99, 0x00, 0xff})
		c.text(x0+pwid/2-70, y0+ph+34, "offered packets/s", black)
		c.text(x0-50, y0-2, "ms", black)
		for _, r := range rs {
			col := palette[r.System]
			steps := append([]step(nil), p.get(r)...)
			for i := 1; i < len(steps); i++ { // sort by rate
				for j := i; j > 0 && steps[j].Offered < steps[j-1].Offered; j-- {
					steps[j], steps[j-1] = steps[j-1], steps[j]
				}
			}
			for i, s := range steps {
				if math.IsNaN(s.P99) {
					continue
				}
				if i > 0 && !math.IsNaN(steps[i-1].P99) {
					c.line(xp(steps[i-1].Offered), yp(steps[i-1].P99), xp(s.Offered), yp(s.P99), col)
				}
				c.dot(xp(s.Offered), yp(s.P99), col, s.Pass)
			}
		}
	}
	lx := 60
	for _, name := range []string{"portico", "rtpengine", "bare"} {
		c.dot(lx, h-18, palette[name], true)
		c.text(lx+8, h-14, name, black)
		lx += 120
	}
	c.text(lx, h-14, "filled: loss < 0.1% and p99 <= 5 ms; hollow: fails", black)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}
