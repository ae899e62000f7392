// Package udpbuf sizes the kernel receive buffer of the UDP sockets the
// services read (SO_RCVBUF, socket(7)) and reads the count of datagrams the
// kernel dropped at a socket because that buffer was full (sk_drops, read
// with SO_MEMINFO on Linux). A burst, or a moment in which the reading
// goroutine is not scheduled, then waits in the kernel instead of being
// lost; the sender's retransmissions are what a loss costs otherwise.
package udpbuf

import (
	"net"
	"syscall"
)

// Socket is what Tune learnt of one socket: the receive buffer the kernel
// granted, and the handle its drop count is read by.
type Socket struct {
	// Granted is SO_RCVBUF as read back (the kernel doubles the request
	// for its bookkeeping and caps it at net.core.rmem_max unless
	// SO_RCVBUFFORCE passed); 0 when unknown.
	Granted int
	raw     syscall.RawConn // nil: not a UDP socket
}

// Tune sizes c's receive buffer to size bytes (SO_RCVBUFFORCE, which
// passes net.core.rmem_max with CAP_NET_ADMIN, else SO_RCVBUF; size -1
// leaves the kernel's default). A socket that is not a *net.UDPConn is
// left as it is, and its Socket reports nothing.
func Tune(c net.PacketConn, size int) *Socket {
	s := &Socket{}
	u, ok := c.(*net.UDPConn)
	if !ok {
		return s
	}
	raw, err := u.SyscallConn()
	if err != nil {
		return s
	}
	s.raw = raw
	raw.Control(func(fd uintptr) { s.Granted = setReceiveBuffer(fd, size) })
	return s
}

// Drops returns the datagrams the kernel dropped at the socket (a full
// receive buffer) since it was opened; false when the kernel does not
// tell, the socket is closed, or s is nil.
func (s *Socket) Drops() (uint64, bool) {
	if s == nil || s.raw == nil {
		return 0, false
	}
	var n uint64
	var ok bool
	if s.raw.Control(func(fd uintptr) { n, ok = socketDrops(fd) }) != nil {
		return 0, false
	}
	return n, ok
}

// DefaultSize is the receive buffer the services ask for unless configured
// otherwise: some 8,000 SIP requests, or seconds of a busy RAS socket.
const DefaultSize = 4 << 20

// Size applies a configured receive buffer's conventions: 0 is
// DefaultSize, -1 the kernel's default (Tune then leaves the socket as it
// is), and anything else must lie within 4096..67108864 bytes; ok is false
// otherwise, and the caller reports Range.
func Size(n int) (size int, ok bool) {
	switch {
	case n == 0:
		return DefaultSize, true
	case n == -1:
		return n, true
	case n < 4096 || n > 64<<20:
		return n, false
	}
	return n, true
}

// Range says what Size accepts, for a validation error.
const Range = "is outside 4096..67108864 (or -1 for the kernel default)"
