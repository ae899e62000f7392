//go:build !linux

package batchio

// Batch is a set of message slots. Outside Linux it holds only the slots.
type Batch struct {
	Msgs []Message
}

// NewBatch allocates a batch of n slots (n >= 1).
func NewBatch(n int) *Batch {
	if n < 1 {
		n = 1
	}
	b := &Batch{Msgs: make([]Message, n)}
	mem := make([]byte, n*MaxDatagram)
	for i := range b.Msgs {
		b.Msgs[i].Buf = mem[i*MaxDatagram : (i+1)*MaxDatagram : (i+1)*MaxDatagram]
	}
	return b
}

// Len is the number of slots.
func (b *Batch) Len() int { return len(b.Msgs) }

func (c *Conn) init() {}

// ReadBatch blocks until one datagram arrives and stores it in slot 0 (the
// portable fallback reads one datagram per call).
func (c *Conn) ReadBatch(b *Batch, max int) (int, error) {
	n, addr, err := c.c.ReadFromUDPAddrPort(b.Msgs[0].Buf)
	if err != nil {
		return 0, err
	}
	b.Msgs[0].N, b.Msgs[0].Addr = n, addr
	return 1, nil
}

// WriteBatch sends slots [0, n) of b one by one.
func (c *Conn) WriteBatch(b *Batch, n int) (int, error) {
	for i := 0; i < n; i++ {
		m := &b.Msgs[i]
		if _, err := c.c.WriteToUDPAddrPort(m.Buf[:m.N], m.Addr); err != nil {
			return i, err
		}
	}
	return n, nil
}
