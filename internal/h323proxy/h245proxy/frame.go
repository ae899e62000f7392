package h245proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// DefaultMaxFrame is the default cap of a TPKT payload: far above any
// Q.931 or H.245 message endpoints send (a fastStart Setup with many
// proposals stays under 4 KiB), far below TPKT's 65,531.
const DefaultMaxFrame = 16384

// ErrFrame marks a TPKT stream that is not one (wrong version, length
// below the header, or above the cap).
var ErrFrame = errors.New("tpkt: bad frame")

// FrameReader reads TPKT packets (RFC 1006 §6) from a TCP stream with a
// cap on their size; it skips empty keep-alive packets (H.225.0 §7.2.2).
// Deadlines are the caller's: set one on the connection before Next.
type FrameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// readers are the 4 KiB read buffers of FrameReaders given back by
// Release: a call's two connections would otherwise allocate 8 KiB each
// time, a fifth of what a call setup allocates.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// NewFrameReader reads from r; max ≤ 0 means DefaultMaxFrame.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return &FrameReader{r: br, max: max}
}

// Release gives the read buffer back for another FrameReader. Only the
// reader's owner calls it, once nothing reads from it any more (its
// connection closed and its reading goroutine returned); f must not be
// used after it.
func (f *FrameReader) Release() {
	if f.r == nil {
		return
	}
	f.r.Reset(nil)
	readers.Put(f.r)
	f.r, f.buf = nil, nil
}

// Buffered returns the bytes read from the stream but not yet returned.
func (f *FrameReader) Buffered() []byte {
	b, _ := f.r.Peek(f.r.Buffered())
	return b
}

// Next returns the next payload, valid until the following call. A clean
// end of stream is io.EOF; an end inside a packet io.ErrUnexpectedEOF.
func (f *FrameReader) Next() ([]byte, error) {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
			return nil, err
		}
		if hdr[0] != 3 {
			return nil, fmt.Errorf("%w: version %d", ErrFrame, hdr[0])
		}
		n := int(binary.BigEndian.Uint16(hdr[2:])) - 4
		if n < 0 {
			return nil, fmt.Errorf("%w: length %d", ErrFrame, n+4)
		}
		if n == 0 {
			continue
		}
		if n > f.max {
			return nil, fmt.Errorf("%w: %d octets, cap %d", ErrFrame, n, f.max)
		}
		if cap(f.buf) < n {
			f.buf = make([]byte, n, max(n, 1024))
		}
		f.buf = f.buf[:n]
		if _, err := io.ReadFull(f.r, f.buf); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return f.buf, nil
	}
}

// AppendFrame appends payload in a TPKT header.
func AppendFrame(dst, payload []byte) []byte {
	n := len(payload) + 4
	dst = append(dst, 3, 0, byte(n>>8), byte(n))
	return append(dst, payload...)
}
