// Package proxyproto parses and writes the PROXY protocol header that load
// balancers (HAProxy, F5) put in front of a TCP connection to carry the real
// client address: the text form (version 1) and the binary form (version 2)
// of the HAProxy PROXY protocol specification (sections 2.1 and 2.2).
//
// Parse and the Append functions are pure: no I/O, no panics on input.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// Errors returned by Parse.
var (
	// ErrShort means b ends before the header does; read more and retry.
	ErrShort = errors.New("proxyproto: need more bytes")
	// ErrNotProxy means b does not start with a PROXY protocol signature.
	ErrNotProxy = errors.New("proxyproto: no PROXY protocol header")
	// ErrMalformed means the header has the signature but is invalid.
	ErrMalformed = errors.New("proxyproto: malformed header")
)

// MaxV1 is the longest version 1 header including CRLF (spec §2.1).
const MaxV1 = 107

// MaxV2 caps the version 2 header (16 fixed bytes plus addresses and TLVs)
// that Parse accepts; the spec allows 65,551 but real balancers send < 600.
const MaxV2 = 16 + 4096

// SigV2 is the 12-byte version 2 signature.
var SigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")

// Header is a parsed PROXY header.
type Header struct {
	Version int // 1 or 2
	// Local is true for a v2 LOCAL command or v1 UNKNOWN: the connection was
	// made by the balancer itself (health check); Source and Dest are unset.
	Local  bool
	Source netip.AddrPort
	Dest   netip.AddrPort
	// Len is the header's length in bytes; the payload starts after it.
	Len int
}

// Parse reads the header at the start of b.
func Parse(b []byte) (Header, error) {
	if len(b) == 0 {
		return Header{}, ErrShort
	}
	if b[0] == 'P' {
		return parseV1(b)
	}
	if b[0] == '\r' {
		return parseV2(b)
	}
	return Header{}, ErrNotProxy
}

func parseV1(b []byte) (Header, error) {
	const sig = "PROXY "
	n := min(len(sig), len(b))
	if string(b[:n]) != sig[:n] {
		return Header{}, ErrNotProxy
	}
	end := bytes.Index(b[:min(len(b), MaxV1)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= MaxV1 {
			return Header{}, ErrMalformed
		}
		return Header{}, ErrShort
	}
	h := Header{Version: 1, Len: end + 2}
	f := bytes.Split(b[len(sig):end], []byte(" "))
	if len(f) >= 1 && string(f[0]) == "UNKNOWN" {
		h.Local = true
		return h, nil
	}
	if len(f) != 5 || (string(f[0]) != "TCP4" && string(f[0]) != "TCP6") {
		return Header{}, ErrMalformed
	}
	src, err1 := netip.ParseAddr(string(f[1]))
	dst, err2 := netip.ParseAddr(string(f[2]))
	sp, err3 := parsePort(f[3])
	dp, err4 := parsePort(f[4])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return Header{}, ErrMalformed
	}
	if (string(f[0]) == "TCP4") != src.Is4() || src.Is4() != dst.Is4() || src.Zone() != "" || dst.Zone() != "" {
		return Header{}, ErrMalformed
	}
	h.Source = netip.AddrPortFrom(src.Unmap(), sp)
	h.Dest = netip.AddrPortFrom(dst.Unmap(), dp)
	if h.Source.Addr().Is4() != h.Dest.Addr().Is4() {
		return Header{}, ErrMalformed
	}
	return h, nil
}

func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, ErrMalformed
	}
	v, err := strconv.ParseUint(string(b), 10, 16)
	return uint16(v), err
}

func parseV2(b []byte) (Header, error) {
	n := min(len(SigV2), len(b))
	if !bytes.Equal(b[:n], SigV2[:n]) {
		return Header{}, ErrNotProxy
	}
	if len(b) < 16 {
		return Header{}, ErrShort
	}
	verCmd, fam := b[12], b[13]
	l := int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 {
		return Header{}, ErrMalformed
	}
	if 16+l > MaxV2 {
		return Header{}, ErrMalformed
	}
	if len(b) < 16+l {
		return Header{}, ErrShort
	}
	h := Header{Version: 2, Len: 16 + l}
	body := b[16 : 16+l]
	switch verCmd & 0xf {
	case 0: // LOCAL
		h.Local = true
		return h, nil
	case 1: // PROXY
	default:
		return Header{}, ErrMalformed
	}
	switch fam {
	case 0x11: // TCP over IPv4
		if l < 12 {
			return Header{}, ErrMalformed
		}
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case 0x21: // TCP over IPv6
		if l < 36 {
			return Header{}, ErrMalformed
		}
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])).Unmap(), binary.BigEndian.Uint16(body[32:34]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])).Unmap(), binary.BigEndian.Uint16(body[34:36]))
		if h.Source.Addr().Is4() != h.Dest.Addr().Is4() {
			return Header{}, ErrMalformed
		}
	case 0x00: // UNSPEC with PROXY: treat like LOCAL (spec §2.2)
		h.Local = true
	default: // UDP or UNIX: not something a TCP listener can use
		return Header{}, ErrMalformed
	}
	return h, nil
}

// AppendV1 appends a version 1 header for src → dst.
func AppendV1(dst []byte, src, to netip.AddrPort) []byte {
	s, d := src.Addr().Unmap(), to.Addr().Unmap()
	if !s.IsValid() || !d.IsValid() || s.Is4() != d.Is4() {
		return append(dst, "PROXY UNKNOWN\r\n"...)
	}
	fam := "TCP6 "
	if s.Is4() {
		fam = "TCP4 "
	}
	dst = append(dst, "PROXY "...)
	dst = append(dst, fam...)
	dst = s.AppendTo(dst)
	dst = append(dst, ' ')
	dst = d.AppendTo(dst)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(src.Port()), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(to.Port()), 10)
	return append(dst, "\r\n"...)
}

// AppendV2 appends a version 2 PROXY-command header for src → dst (no TLVs).
func AppendV2(dst []byte, src, to netip.AddrPort) []byte {
	s, d := src.Addr().Unmap(), to.Addr().Unmap()
	dst = append(dst, SigV2...)
	if !s.IsValid() || !d.IsValid() || s.Is4() != d.Is4() {
		return append(dst, 0x20, 0x00, 0, 0) // LOCAL, UNSPEC
	}
	if s.Is4() {
		dst = append(dst, 0x21, 0x11, 0, 12)
		a, b := s.As4(), d.As4()
		dst = append(dst, a[:]...)
		dst = append(dst, b[:]...)
	} else {
		dst = append(dst, 0x21, 0x21, 0, 36)
		a, b := s.As16(), d.As16()
		dst = append(dst, a[:]...)
		dst = append(dst, b[:]...)
	}
	dst = binary.BigEndian.AppendUint16(dst, src.Port())
	return binary.BigEndian.AppendUint16(dst, to.Port())
}
