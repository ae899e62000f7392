package batchio

import (
	"errors"
	"net"
	"syscall"
)

// Conn reads and writes batches on a *net.UDPConn. On Linux a batch is one
// recvmmsg/sendmmsg call that waits in Go's network poller; elsewhere it is a
// loop of single reads and writes (the portable fallback). Conn is used by
// one reader and one writer goroutine at most.
type Conn struct {
	c  *net.UDPConn
	rc syscall.RawConn
	// per-direction state for the Linux raw calls, kept in the Conn so the
	// closures passed to RawConn are built once (no allocation per batch).
	rb, wb          *Batch
	rmax            int
	rn, wn          int
	rerr, werr      error
	wfrom, wto      int
	readFn, writeFn func(fd uintptr) bool
}

// NewConn wraps c. The returned Conn does not own c's lifetime beyond Close.
func NewConn(c *net.UDPConn) (*Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	cc := &Conn{c: c, rc: rc}
	cc.init()
	return cc, nil
}

// UDPConn returns the wrapped connection.
func (c *Conn) UDPConn() *net.UDPConn { return c.c }

// Close closes the wrapped connection.
func (c *Conn) Close() error { return c.c.Close() }

// SetBuffers sets SO_RCVBUF and SO_SNDBUF (bytes) when positive.
func SetBuffers(c *net.UDPConn, rcv, snd int) error {
	var errs []error
	if rcv > 0 {
		errs = append(errs, c.SetReadBuffer(rcv))
	}
	if snd > 0 {
		errs = append(errs, c.SetWriteBuffer(snd))
	}
	return errors.Join(errs...)
}
