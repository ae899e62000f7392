// Package sniff classifies the first bytes of a TCP connection arriving on
// Portico's one TLS port and parses a TLS ClientHello (RFC 8446 §4.1.2,
// RFC 5246 §7.4.1.2) without consuming it, extracting the server name
// (SNI, RFC 6066 §3) and the offered application protocols (ALPN,
// RFC 7301 §3.1). It also recognises plain HTTP/1.x request lines, STUN/TURN
// over TCP (RFC 8489 §5 magic cookie; RFC 7443 for TURN over TLS is an ALPN
// value), LDAP messages (RFC 4511 §4.1.1) and XMPP streams (RFC 6120 §4).
//
// Everything here is pure: no sockets, no goroutines, no panics on input.
package sniff

import (
	"encoding/binary"
	"errors"
)

// Errors returned by the parsers.
var (
	// ErrShort means more bytes are needed to decide; the caller reads more and retries.
	ErrShort = errors.New("sniff: need more bytes")
	// ErrNotClientHello means the bytes are not a TLS handshake record carrying a ClientHello.
	ErrNotClientHello = errors.New("sniff: not a TLS ClientHello")
	// ErrMalformed means a length or field is inconsistent.
	ErrMalformed = errors.New("sniff: malformed ClientHello")
	// ErrTooLarge means the ClientHello exceeds MaxClientHello.
	ErrTooLarge = errors.New("sniff: ClientHello too large")
)

// MaxClientHello caps the handshake message size accepted (post-quantum key
// shares make ClientHellos of 2 KiB common; 64 KiB is the protocol's practical ceiling).
const MaxClientHello = 1 << 16

// Kind is what a connection's first bytes look like.
type Kind int

// Kinds of connection.
const (
	Unknown Kind = iota
	TLS
	HTTP
	STUN
	LDAP
	XMPP
)

func (k Kind) String() string {
	switch k {
	case TLS:
		return "tls"
	case HTTP:
		return "http"
	case STUN:
		return "stun"
	case LDAP:
		return "ldap"
	case XMPP:
		return "xmpp"
	}
	return "unknown"
}

// StunMagicCookie is the fixed value at bytes 4..8 of every STUN message (RFC 8489 §5).
const StunMagicCookie = 0x2112A442

var httpMethods = []string{"GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ", "PRI * HTTP/2"}

// Classify decides what b (the first bytes of a connection) is. It returns
// ErrShort when b is a prefix that more bytes could still decide, and
// Unknown with a nil error when nothing matches.
func Classify(b []byte) (Kind, error) {
	if len(b) == 0 {
		return Unknown, ErrShort
	}
	switch c := b[0]; {
	case c == 0x16:
		if len(b) >= 2 && b[1] != 3 {
			return Unknown, nil
		}
		return TLS, nil
	case c == 0x30:
		return LDAP, nil
	case c == '<':
		return XMPP, nil
	case c>>6 == 0:
		if len(b) < 8 {
			return Unknown, ErrShort
		}
		if binary.BigEndian.Uint32(b[4:8]) == StunMagicCookie {
			return STUN, nil
		}
		return Unknown, nil
	case c >= 'A' && c <= 'Z':
		short := false
		for _, m := range httpMethods {
			n := min(len(m), len(b))
			if string(b[:n]) == m[:n] {
				if n == len(m) {
					return HTTP, nil
				}
				short = true
			}
		}
		if short {
			return Unknown, ErrShort
		}
	}
	return Unknown, nil
}

// ClientHello is what routing needs from a ClientHello.
type ClientHello struct {
	// ServerName is the SNI host_name, lower-cased as sent ("" when absent).
	ServerName string
	// ALPN lists the offered protocols in client order.
	ALPN []string
	// LegacyVersion is the ClientHello's legacy_version field.
	LegacyVersion uint16
	// SupportedVersions is the supported_versions extension (RFC 8446 §4.2.1), if present.
	SupportedVersions []uint16
	// Len is how many bytes of the input the records holding the ClientHello span.
	Len int
}

// ParseClientHello parses the TLS records at the start of b holding a
// ClientHello, which may be fragmented over several records. It returns
// ErrShort when b ends before the ClientHello does.
func ParseClientHello(b []byte) (ClientHello, error) {
	var hs []byte // handshake bytes gathered from records
	off := 0
	need := -1
	for {
		if len(b)-off < 5 {
			return ClientHello{}, ErrShort
		}
		if b[off] != 0x16 || b[off+1] != 3 {
			return ClientHello{}, ErrNotClientHello
		}
		rl := int(binary.BigEndian.Uint16(b[off+3 : off+5]))
		if rl == 0 || rl > 1<<14+2048 {
			return ClientHello{}, ErrMalformed
		}
		if len(b)-off-5 < rl {
			// Decide early what we can: the first record must start a ClientHello.
			if hs == nil && len(b)-off-5 >= 1 && b[off+5] != 1 {
				return ClientHello{}, ErrNotClientHello
			}
			return ClientHello{}, ErrShort
		}
		hs = append(hs, b[off+5:off+5+rl]...)
		off += 5 + rl
		if need < 0 && len(hs) >= 4 {
			if hs[0] != 1 {
				return ClientHello{}, ErrNotClientHello
			}
			need = 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
			if need > MaxClientHello {
				return ClientHello{}, ErrTooLarge
			}
		}
		if need >= 0 && len(hs) >= need {
			break
		}
		if off > MaxClientHello+5*16 {
			return ClientHello{}, ErrTooLarge
		}
	}
	ch, err := parseHelloBody(hs[4:need])
	ch.Len = off
	return ch, err
}

type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u8() int {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return int(v)
}

func (r *reader) u16() int {
	if len(r.b) < 2 {
		r.bad = true
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return int(v)
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func parseHelloBody(body []byte) (ClientHello, error) {
	var ch ClientHello
	r := &reader{b: body}
	ch.LegacyVersion = uint16(r.u16())
	r.bytes(32) // random
	if sl := r.u8(); sl > 32 {
		return ch, ErrMalformed
	} else {
		r.bytes(sl)
	}
	if cl := r.u16(); cl%2 != 0 || cl == 0 {
		return ch, ErrMalformed
	} else {
		r.bytes(cl)
	}
	r.bytes(r.u8()) // compression methods
	if r.bad {
		return ch, ErrMalformed
	}
	if len(r.b) == 0 {
		return ch, nil // no extensions (SSLv3-style hello)
	}
	ext := &reader{b: r.bytes(r.u16())}
	if r.bad {
		return ch, ErrMalformed
	}
	for len(ext.b) > 0 {
		typ := ext.u16()
		data := &reader{b: ext.bytes(ext.u16())}
		if ext.bad {
			return ch, ErrMalformed
		}
		switch typ {
		case 0: // server_name
			list := &reader{b: data.bytes(data.u16())}
			for len(list.b) > 0 {
				nt := list.u8()
				name := list.bytes(list.u16())
				if list.bad {
					return ch, ErrMalformed
				}
				if nt == 0 && ch.ServerName == "" {
					if len(name) == 0 || len(name) > 255 {
						return ch, ErrMalformed
					}
					ch.ServerName = lowerASCII(name)
				}
			}
		case 16: // application_layer_protocol_negotiation
			list := &reader{b: data.bytes(data.u16())}
			for len(list.b) > 0 && len(ch.ALPN) < 32 {
				p := list.bytes(list.u8())
				if list.bad || len(p) == 0 {
					return ch, ErrMalformed
				}
				ch.ALPN = append(ch.ALPN, string(p))
			}
		case 43: // supported_versions
			list := &reader{b: data.bytes(data.u8())}
			for len(list.b) >= 2 && len(ch.SupportedVersions) < 16 {
				ch.SupportedVersions = append(ch.SupportedVersions, uint16(list.u16()))
			}
		}
		if data.bad {
			return ch, ErrMalformed
		}
	}
	return ch, nil
}

func lowerASCII(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}
