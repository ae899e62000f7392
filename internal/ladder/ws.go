package ladder

import (
	"bytes"
	"encoding/binary"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
)

// WSFramer takes one direction of a WebSocket connection carrying SIP
// (RFC 7118) and emits each SIP message: it skips the HTTP upgrade
// request or response that opens the stream, reads frames (RFC 6455
// section 5.2), unmasks client frames, joins fragments and emits each
// complete text or binary message; control frames are skipped. A message
// over maxFrame, or a frame that cannot be read, ends the framing of
// that connection (its remaining bytes are counted as dropped).
type WSFramer struct {
	buf     []byte
	msg     []byte // fragments of the message being joined
	inMsg   bool
	started bool // the HTTP preamble is behind
	broken  bool
	Dropped int
}

// Write adds stream bytes and calls emit with each complete message.
// emit's argument is valid only during the call.
func (f *WSFramer) Write(b []byte, emit func([]byte)) {
	if f.broken {
		f.Dropped += len(b)
		return
	}
	f.buf = append(f.buf, b...)
	if !f.started {
		if len(f.buf) > 0 && f.buf[0] != 'G' && f.buf[0] != 'H' {
			f.started = true // no preamble: frames from the start
		} else {
			end := bytes.Index(f.buf, []byte("\r\n\r\n"))
			if end < 0 {
				if len(f.buf) > maxFrame {
					f.fail()
				}
				return
			}
			f.buf = f.buf[end+4:]
			f.started = true
		}
	}
	for {
		n, ok := f.frame(emit)
		if !ok || f.broken {
			return
		}
		f.buf = f.buf[n:]
		if len(f.buf) == 0 {
			f.buf = nil
		}
	}
}

// frame reads one frame at the start of buf, returning its length; ok is
// false when buf holds no complete frame yet.
func (f *WSFramer) frame(emit func([]byte)) (n int, ok bool) {
	b := f.buf
	if len(b) < 2 {
		return 0, false
	}
	fin, op := b[0]&0x80 != 0, b[0]&0x0f
	masked := b[1]&0x80 != 0
	length := uint64(b[1] & 0x7f)
	h := 2
	switch length {
	case 126:
		if len(b) < 4 {
			return 0, false
		}
		length, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, false
		}
		length, h = binary.BigEndian.Uint64(b[2:]), 10
	}
	if length > maxFrame {
		f.fail()
		return 0, false
	}
	var key []byte
	if masked {
		if len(b) < h+4 {
			return 0, false
		}
		key, h = b[h:h+4], h+4
	}
	total := h + int(length)
	if len(b) < total {
		return 0, false
	}
	payload := b[h:total]
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	switch {
	case op >= 0x8: // control: close, ping, pong
	case op == wsText || op == wsBinary || (op == wsContinuation && f.inMsg):
		if op != wsContinuation {
			f.msg = f.msg[:0]
		}
		if len(f.msg)+len(payload) > maxFrame {
			f.fail()
			return 0, false
		}
		f.msg = append(f.msg, payload...)
		f.inMsg = !fin
		if fin {
			emit(f.msg)
			f.msg = f.msg[:0]
		}
	default: // a continuation without a start, or a reserved opcode
		f.fail()
		return 0, false
	}
	return total, true
}

func (f *WSFramer) fail() {
	f.broken = true
	f.Dropped += len(f.buf)
	f.buf, f.msg = nil, nil
}
