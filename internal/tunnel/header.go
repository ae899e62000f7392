package tunnel

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Kind tells what a flow carries.
type Kind uint8

// Flow kinds.
const (
	KindTCP Kind = 1 // a QUIC stream carrying one TCP connection
	KindUDP Kind = 2 // datagrams carrying one UDP 5-tuple
	// KindControl is a stream carrying one control request between the
	// ends (certificate rotation); its service name is "control".
	KindControl Kind = 3
	// KindDial is a stream carrying one TCP connection to the destination
	// that follows the header (DialTarget), for a dial service.
	KindDial Kind = 4
)

const (
	headerVersion = 1
	headerFixed   = 6 // version|kind, flow (4), service length
	// MaxServiceName caps a service name on the wire and in config.
	MaxServiceName = 32
	// MaxHeader is the largest encoded Header.
	MaxHeader = headerFixed + MaxServiceName
)

// Header names the flow a stream or datagram belongs to:
//
//	byte 0      version (high 4 bits, 1) | kind (low 4 bits)
//	bytes 1-4   flow identifier, big endian, chosen by the side that opened it
//	byte 5      service name length n (1..32)
//	bytes 6..   service name
type Header struct {
	Kind    Kind
	Flow    uint32
	Service string
}

// Append appends the encoded header to dst. The header must be valid.
func (h Header) Append(dst []byte) []byte {
	dst = append(dst, headerVersion<<4|byte(h.Kind))
	dst = binary.BigEndian.AppendUint32(dst, h.Flow)
	dst = append(dst, byte(len(h.Service)))
	return append(dst, h.Service...)
}

// Len is the encoded length of h.
func (h Header) Len() int { return headerFixed + len(h.Service) }

func (h Header) valid() error {
	if h.Kind != KindTCP && h.Kind != KindUDP && h.Kind != KindControl && h.Kind != KindDial {
		return fmt.Errorf("%w: kind %d", ErrHeader, h.Kind)
	}
	return validServiceName(h.Service)
}

func validServiceName(s string) error {
	if len(s) == 0 || len(s) > MaxServiceName {
		return fmt.Errorf("%w: service name length %d", ErrHeader, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: service name byte %#x", ErrHeader, c)
		}
	}
	return nil
}

// Parse decodes the header at the start of b and returns it with its encoded
// length; the payload is b[n:].
func Parse(b []byte) (h Header, n int, err error) {
	if len(b) < headerFixed {
		return Header{}, 0, fmt.Errorf("%w: %d bytes", ErrHeader, len(b))
	}
	if b[0]>>4 != headerVersion {
		return Header{}, 0, fmt.Errorf("%w: version %d", ErrHeader, b[0]>>4)
	}
	l := int(b[5])
	if len(b) < headerFixed+l {
		return Header{}, 0, fmt.Errorf("%w: service name truncated", ErrHeader)
	}
	h = Header{Kind: Kind(b[0] & 0x0f), Flow: binary.BigEndian.Uint32(b[1:5]), Service: string(b[headerFixed : headerFixed+l])}
	if err := h.valid(); err != nil {
		return Header{}, 0, err
	}
	return h, headerFixed + l, nil
}

// ReadHeader reads one header from the start of a stream.
func ReadHeader(r io.Reader) (Header, error) {
	var buf [MaxHeader]byte
	if _, err := io.ReadFull(r, buf[:headerFixed]); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrHeader, err)
	}
	l := int(buf[5])
	if l > MaxServiceName {
		return Header{}, fmt.Errorf("%w: service name length %d", ErrHeader, l)
	}
	if _, err := io.ReadFull(r, buf[headerFixed:headerFixed+l]); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrHeader, err)
	}
	h, _, err := Parse(buf[:headerFixed+l])
	return h, err
}
