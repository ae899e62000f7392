package capture

import (
	"encoding/binary"
	"testing"
)

// Packet is one TPKT payload reassembled from a TCP stream.
type Packet struct {
	File    string
	Frame   int // frame holding the packet's first octet
	Payload []byte
	// Partial marks the bytes left at the end of a direction that do not
	// form a whole TPKT packet (a truncated capture).
	Partial bool
	// Malformed marks packets with bytes from a frame tshark reports as
	// malformed.
	Malformed bool
}

// TPKTPackets reassembles the TCP payloads of the frames matching filter,
// per stream and direction, and splits them into TPKT packets. Keep-alive
// (empty) packets are dropped; filter should exclude retransmissions.
func TPKTPackets(t testing.TB, file, filter string) []Packet {
	t.Helper()
	type dirKey struct{ stream, port int }
	type dir struct {
		buf    []byte
		frames []int // frame number per byte offset start
		starts []int
		bad    []bool
	}
	dirs := map[dirKey]*dir{}
	var order []dirKey
	for _, fr := range Frames(t, file, filter) {
		if fr.UDP {
			continue
		}
		k := dirKey{fr.Stream, fr.SrcPort}
		d := dirs[k]
		if d == nil {
			d = &dir{}
			dirs[k] = d
			order = append(order, k)
		}
		d.starts = append(d.starts, len(d.buf))
		d.frames = append(d.frames, fr.Num)
		d.bad = append(d.bad, fr.Malformed)
		d.buf = append(d.buf, fr.Payload...)
	}
	var out []Packet
	for _, k := range order {
		d := dirs[k]
		b := d.buf
		off := 0
		frameAt := func(o int) int {
			f := 0
			for i, s := range d.starts {
				if s <= o {
					f = d.frames[i]
				}
			}
			return f
		}
		badIn := func(from, to int) bool {
			for i, s := range d.starts {
				end := len(d.buf)
				if i+1 < len(d.starts) {
					end = d.starts[i+1]
				}
				if d.bad[i] && s < to && end > from {
					return true
				}
			}
			return false
		}
		for len(b)-off >= 4 {
			if b[off] != 3 {
				// not TPKT (e.g. a 1-byte keep-alive): resynchronise
				off++
				continue
			}
			n := int(binary.BigEndian.Uint16(b[off+2:]))
			if n < 4 {
				off++
				continue
			}
			if off+n > len(b) {
				out = append(out, Packet{File: file, Frame: frameAt(off), Payload: b[off+4:], Partial: true, Malformed: badIn(off, len(b))})
				break
			}
			if n > 4 {
				out = append(out, Packet{File: file, Frame: frameAt(off), Payload: b[off+4 : off+n], Malformed: badIn(off, off+n)})
			}
			off += n
		}
	}
	return out
}
