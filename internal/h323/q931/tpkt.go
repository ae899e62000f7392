package q931

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// TPKT framing (RFC 1006 §6): version 3, a reserved octet, and a 16-bit
// length that includes the 4-octet header.
const (
	tpktVersion = 3
	tpktHeader  = 4
	// MaxTPKT is the largest payload a TPKT packet can carry.
	MaxTPKT = 65535 - tpktHeader
)

// AppendTPKT appends payload framed in a TPKT header.
func AppendTPKT(dst, payload []byte) ([]byte, error) {
	if len(payload) > MaxTPKT {
		return dst, fmt.Errorf("%w: %d octets", ErrTooLong, len(payload))
	}
	n := len(payload) + tpktHeader
	dst = append(dst, tpktVersion, 0, byte(n>>8), byte(n))
	return append(dst, payload...), nil
}

// SplitTPKT returns the payload of the TPKT packet at the start of b and
// the bytes after it. It returns ErrShort when b holds less than one packet.
func SplitTPKT(b []byte) (payload, rest []byte, err error) {
	if len(b) < tpktHeader {
		return nil, b, ErrShort
	}
	if b[0] != tpktVersion {
		return nil, b, fmt.Errorf("%w: version %d", ErrTPKT, b[0])
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < tpktHeader {
		return nil, b, fmt.Errorf("%w: length %d", ErrTPKT, n)
	}
	if len(b) < n {
		return nil, b, ErrShort
	}
	return b[tpktHeader:n:n], b[n:], nil
}

// TPKTReader reads TPKT packets from a byte stream, whatever the TCP
// segmentation, and skips empty keep-alive packets (H.225.0 §7.2.2 allows
// TPKT packets of length 4 as keep-alives).
type TPKTReader struct {
	r   *bufio.Reader
	buf []byte
	// KeepAlives counts the empty packets skipped.
	KeepAlives int
}

// NewTPKTReader returns a reader of TPKT packets from r.
func NewTPKTReader(r io.Reader) *TPKTReader {
	return &TPKTReader{r: bufio.NewReaderSize(r, 4096)}
}

// Next returns the next non-empty payload. The slice is valid until the
// next call. At a clean end of stream it returns io.EOF; a stream ending
// inside a packet returns io.ErrUnexpectedEOF.
func (t *TPKTReader) Next() ([]byte, error) {
	var hdr [tpktHeader]byte
	for {
		if _, err := io.ReadFull(t.r, hdr[:]); err != nil {
			return nil, err
		}
		if hdr[0] != tpktVersion {
			return nil, fmt.Errorf("%w: version %d", ErrTPKT, hdr[0])
		}
		n := int(binary.BigEndian.Uint16(hdr[2:4]))
		if n < tpktHeader {
			return nil, fmt.Errorf("%w: length %d", ErrTPKT, n)
		}
		if n == tpktHeader {
			t.KeepAlives++
			continue
		}
		if cap(t.buf) < n-tpktHeader {
			t.buf = make([]byte, n-tpktHeader)
		}
		t.buf = t.buf[:n-tpktHeader]
		if _, err := io.ReadFull(t.r, t.buf); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return t.buf, nil
	}
}
