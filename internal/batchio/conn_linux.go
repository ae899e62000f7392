//go:build linux

package batchio

func (c *Conn) init() {
	c.readFn = func(fd uintptr) bool {
		c.rn, c.rerr = c.rb.RecvFD(int(fd), c.rmax)
		return c.rerr != ErrWouldBlock
	}
	c.writeFn = func(fd uintptr) bool {
		var n int
		n, c.werr = c.wb.SendFD(int(fd), c.wfrom, c.wto)
		c.wn += n
		c.wfrom += n
		return c.werr != ErrWouldBlock
	}
}

// ReadBatch blocks until at least one datagram arrives, then fills up to max
// slots of b (all when max <= 0) and returns how many.
func (c *Conn) ReadBatch(b *Batch, max int) (int, error) {
	c.rb, c.rmax, c.rn, c.rerr = b, max, 0, nil
	if err := c.rc.Read(c.readFn); err != nil {
		return 0, err
	}
	return c.rn, c.rerr
}

// WriteBatch sends slots [0, n) of b, each to its Addr, waiting for room in
// the socket buffer when needed. It returns how many were sent.
func (c *Conn) WriteBatch(b *Batch, n int) (int, error) {
	c.wb, c.wfrom, c.wto, c.wn, c.werr = b, 0, n, 0, nil
	if err := c.rc.Write(c.writeFn); err != nil {
		return c.wn, err
	}
	return c.wn, c.werr
}
