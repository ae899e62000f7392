// Package rtp reads the parts of RTP and RTCP packets a media relay needs:
// the RTP fixed header (RFC 3550 section 5.1), RTCP sender and receiver
// reports (RFC 3550 sections 6.4.1 and 6.4.2) inside compound packets, and
// the first-byte demultiplexing of RTP, RTCP, STUN and DTLS sharing one port
// (RFC 7983 section 7, RFC 5761 section 4).
//
// The parsers are pure: they never allocate, never panic on input and trust
// no length they have not checked against the buffer.
package rtp

import (
	"encoding/binary"
	"errors"
)

// Errors returned by the parsers.
var (
	ErrShort   = errors.New("rtp: packet too short")
	ErrVersion = errors.New("rtp: version is not 2")
	ErrLength  = errors.New("rtp: length field exceeds packet")
)

// Class is what a datagram on a media port is, from its first bytes.
type Class uint8

// Classes per RFC 7983 section 7 and RFC 5761 section 4.
const (
	ClassUnknown Class = iota
	ClassSTUN
	ClassDTLS
	ClassRTP
	ClassRTCP
)

func (c Class) String() string {
	switch c {
	case ClassSTUN:
		return "stun"
	case ClassDTLS:
		return "dtls"
	case ClassRTP:
		return "rtp"
	case ClassRTCP:
		return "rtcp"
	}
	return "unknown"
}

// Classify tells STUN, DTLS, RTP and RTCP apart. RTCP is recognised by its
// packet type 192..223 (RFC 5761 section 4), the range RTP payload types
// avoid when RTP and RTCP share a port.
func Classify(b []byte) Class {
	if len(b) == 0 {
		return ClassUnknown
	}
	switch f := b[0]; {
	case f <= 3:
		return ClassSTUN
	case f >= 20 && f <= 63:
		return ClassDTLS
	case f >= 128 && f <= 191:
		if len(b) < 2 {
			return ClassUnknown
		}
		if pt := b[1]; pt >= 192 && pt <= 223 {
			return ClassRTCP
		}
		return ClassRTP
	}
	return ClassUnknown
}

// Header is the RTP fixed header.
type Header struct {
	Marker      bool
	PayloadType uint8
	Sequence    uint16
	Timestamp   uint32
	SSRC        uint32
	// PayloadOffset is where the payload starts (after CSRCs and extension).
	PayloadOffset int
}

// ParseHeader reads an RTP header.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < 12 {
		return h, ErrShort
	}
	if b[0]>>6 != 2 {
		return h, ErrVersion
	}
	h.Marker = b[1]&0x80 != 0
	h.PayloadType = b[1] & 0x7f
	h.Sequence = binary.BigEndian.Uint16(b[2:])
	h.Timestamp = binary.BigEndian.Uint32(b[4:])
	h.SSRC = binary.BigEndian.Uint32(b[8:])
	off := 12 + 4*int(b[0]&0x0f)
	if off > len(b) {
		return h, ErrLength
	}
	if b[0]&0x10 != 0 {
		if off+4 > len(b) {
			return h, ErrLength
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
		if off > len(b) {
			return h, ErrLength
		}
	}
	h.PayloadOffset = off
	return h, nil
}

// SSRC returns the SSRC of an RTP packet or, for RTCP, of its sender, without
// parsing further. ok is false when b is too short.
func SSRC(b []byte) (ssrc uint32, ok bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		if len(b) >= 8 && b[0]>>6 == 2 {
			return binary.BigEndian.Uint32(b[4:]), true
		}
		return 0, false
	}
	if Classify(b) == ClassRTCP {
		return binary.BigEndian.Uint32(b[4:]), true
	}
	return binary.BigEndian.Uint32(b[8:]), true
}
