package accessproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// h1Transport forwards the common case to a plain-HTTP upstream (a GET,
// HEAD or OPTIONS without a body or Upgrade) over pooled HTTP/1.1
// keep-alive connections, entirely on the calling goroutine: one write
// system call for the request, reads for the response, and no hand-offs to
// the per-connection read and write goroutines http.Transport runs. Every
// other request (bodies, WebSocket upgrades, other methods) goes to
// fallback, the route's http.Transport, unchanged.
type h1Transport struct {
	fallback   http.RoundTripper
	host       string // the upstream URL's host; requests for another fall back
	addr       string // host:port dialled
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	respHeader time.Duration // Timeouts.HTTPResponseHeader
	idleFor    time.Duration // an idle connection is closed after this
	maxIdle    int
	maxHeader  int64 // bytes a response header may take (with any 1xx before it)

	mu       sync.Mutex
	idle     []*h1Conn // most recently used last
	sweeping bool
	// retired: the route's state was replaced or the server closed; a
	// request still in flight closes its connection instead of pooling it
	// where nothing would use it again.
	retired bool
}

type h1Conn struct {
	c      net.Conn
	br     *bufio.Reader // reads through limitReader
	bw     *bufio.Writer
	left   int64 // bytes the response header may still take; see limitReader
	idleAt time.Time
	peeker *peeker // made at the first reuse
}

// limitReader bounds what a response header may read, as http.Transport's
// MaxResponseHeaderBytes does: an upstream cannot make Portico buffer an
// endless header.
type limitReader struct{ pc *h1Conn }

func (r limitReader) Read(p []byte) (int, error) {
	if r.pc.left <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > r.pc.left {
		p = p[:r.pc.left]
	}
	n, err := r.pc.c.Read(p)
	r.pc.left -= int64(n)
	return n, err
}

// maxResponseHeader is http.Transport's default MaxResponseHeaderBytes.
const maxResponseHeader = 10 << 20

// aLongTimeAgo is a deadline that has passed: setting it unblocks a read.
var aLongTimeAgo = time.Unix(1, 0)

func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.lean(req) {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !validHeader(req.Header) {
		return t.fallback.RoundTrip(req) // it refuses with the precise error
	}
	pc, reused := t.get()
	resp, err := t.exchange(ctx, req, pc, reused)
	if errors.Is(err, errNoResponse) && ctx.Err() == nil {
		// The request had no body and an idempotent method, and the
		// upstream saw at most its bytes on a connection it was closing:
		// send it once more on a fresh connection, as http.Transport does.
		resp, err = t.exchange(ctx, req, nil, false)
	}
	return resp, err
}

// lean reports whether req takes the synchronous path.
func (t *h1Transport) lean(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	return req.URL.Scheme == "http" && req.URL.Host == t.host &&
		(req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 &&
		len(req.TransferEncoding) == 0 && !req.Close &&
		req.Header["Upgrade"] == nil && req.Header["Expect"] == nil && req.Trailer == nil
}

// validHeader applies http.Transport's check of outgoing header fields:
// names are RFC 9110 tokens, values hold no control characters but HTAB.
func validHeader(h http.Header) bool {
	for k, vs := range h {
		if k == "" {
			return false
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; c >= 0x80 || !tokenChar[c] {
				return false
			}
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
					return false
				}
			}
		}
	}
	return true
}

// tokenChar marks the bytes of an RFC 9110 §5.6.2 token.
var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// exchange sends req on pc (a new connection when nil) and reads the
// response header. The response body returns the connection to the pool
// once read to its end.
func (t *h1Transport) exchange(ctx context.Context, req *http.Request, pc *h1Conn, reused bool) (*http.Response, error) {
	if pc == nil {
		c, err := t.dial(ctx, "tcp", t.addr)
		if err != nil {
			return nil, err
		}
		pc = &h1Conn{c: c, bw: bufio.NewWriterSize(c, 4<<10)}
		pc.br = bufio.NewReaderSize(limitReader{pc}, 16<<10)
	}
	pc.left = t.maxHeader
	// Cancelling the request (the client went away, the server shuts
	// down) unblocks whatever read or write is under way.
	stop := context.AfterFunc(ctx, func() { _ = pc.c.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.c.Close()
		if cerr := context.Cause(ctx); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	if err := req.Write(pc.bw); err != nil {
		return fail(err)
	}
	if err := pc.bw.Flush(); err != nil {
		if reused {
			err = errNoResponse
		}
		return fail(err)
	}
	if t.respHeader > 0 {
		_ = pc.c.SetReadDeadline(time.Now().Add(t.respHeader))
		// A cancellation just before would have its deadline overwritten.
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			if reused && pc.br.Buffered() == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) {
				err = errNoResponse
			}
			return fail(err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx informational (103 Early Hints): ReverseProxy forwards it
		// through its client trace, as with http.Transport.
		// The limit covers all 1xx headers together unless they are handed on.
		if tr := httptrace.ContextClientTrace(ctx); tr != nil && tr.Got1xxResponse != nil {
			if err := tr.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
			pc.left = t.maxHeader
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Upgrades were not asked for on this path.
		return fail(errors.New("accessproxy: upstream switched protocols unasked"))
	}
	pc.left = math.MaxInt64 // the body is not limited here
	_ = pc.c.SetReadDeadline(time.Time{})
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	resp.Body = &h1Body{body: resp.Body, ctx: ctx, t: t, pc: pc, stop: stop, keep: !resp.Close}
	return resp, nil
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// h1Body is a response body; at its end the connection goes back to the
// pool, when closed early the connection is closed.
type h1Body struct {
	body io.ReadCloser
	ctx  context.Context
	t    *h1Transport
	pc   *h1Conn
	stop func() bool
	keep bool
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil && b.ctx.Err() != nil {
		// The deadline set on cancellation shows as a timeout; report the
		// cancellation, as http.Transport does (ReverseProxy logs other errors).
		err = b.ctx.Err()
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *h1Body) finish(atEnd bool) {
	b.done = true
	// stop reports false when the request was cancelled and the deadline
	// may already be set: the connection is then not reusable.
	if b.stop() && atEnd && b.keep && b.pc.br.Buffered() == 0 {
		b.t.put(b.pc)
		return
	}
	b.pc.c.Close()
}

// get takes the most recently used idle connection that is still fresh
// and quiet. An upstream has nothing to say on an idle HTTP/1.1
// connection: bytes waiting there are an unsolicited response (a broken or
// hostile upstream answering twice), which must never be read as the
// answer to the next request, another client's; and a connection the
// upstream closed is of no use. Either is discarded. net/http's Transport
// learns the same with a read always pending on idle connections; here it
// is one non-blocking peek per reuse.
func (t *h1Transport) get() (*h1Conn, bool) {
	for {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			return nil, false
		}
		pc := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if time.Since(pc.idleAt) < t.idleFor && pc.quiet() {
			return pc, true
		}
		pc.c.Close()
	}
}

// quiet reports whether nothing is waiting to be read on pc and the peer
// has not closed it, without consuming or blocking.
func (pc *h1Conn) quiet() bool {
	if pc.peeker == nil {
		sc, ok := pc.c.(syscall.Conn)
		if !ok {
			return true // not a socket (tests' pipes): nothing to peek at
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		pc.peeker = &peeker{rc: rc}
		pc.peeker.fn = pc.peeker.peek
	}
	p := pc.peeker
	return p.rc.Read(p.fn) == nil && p.quiet
}

// peeker is a one-byte non-blocking MSG_PEEK; recvfrom is called directly
// because unix.Recvfrom allocates a source address a stream has not got.
// It is kept with its connection so that a check allocates nothing.
type peeker struct {
	rc    syscall.RawConn
	fn    func(fd uintptr) bool // peek, bound once
	b     [1]byte
	quiet bool
}

func (p *peeker) peek(fd uintptr) bool {
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.b[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	p.quiet = errno == unix.EAGAIN || errno == unix.EWOULDBLOCK
	return true
}

func (t *h1Transport) put(pc *h1Conn) {
	pc.idleAt = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.retired || len(t.idle) >= t.maxIdle {
		pc.c.Close()
		return
	}
	t.idle = append(t.idle, pc)
	if !t.sweeping {
		t.sweeping = true
		time.AfterFunc(t.idleFor, t.sweep)
	}
}

// sweep closes connections idle for longer than idleFor, so a pool left
// unused does not hold upstream sockets open.
func (t *h1Transport) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := 0
	for i < len(t.idle) && time.Since(t.idle[i].idleAt) >= t.idleFor {
		t.idle[i].c.Close()
		t.idle[i] = nil
		i++
	}
	t.idle = append(t.idle[:0], t.idle[i:]...)
	if len(t.idle) == 0 {
		t.sweeping = false
		return
	}
	time.AfterFunc(t.idleFor-time.Since(t.idle[0].idleAt), t.sweep)
}

// retire closes the pooled connections and makes every connection put back
// later be closed instead: the transport's route is no longer served.
func (t *h1Transport) retire() {
	t.mu.Lock()
	t.retired = true
	t.mu.Unlock()
	t.CloseIdleConnections()
}

// CloseIdleConnections closes the pooled connections (and the fallback's).
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	for _, pc := range t.idle {
		pc.c.Close()
	}
	clear(t.idle)
	t.idle = t.idle[:0]
	t.mu.Unlock()
	if ci, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
