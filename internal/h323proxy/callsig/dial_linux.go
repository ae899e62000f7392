//go:build linux

package callsig

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindNoPort is the Control of Portico's outgoing call-signalling
// connections, which bind a side's address: IP_BIND_ADDRESS_NO_PORT
// leaves the source port to connect, which picks it by the whole 4-tuple
// (and may reuse a port in TIME_WAIT toward another peer). Without it,
// bind searches the ephemeral range for a port unused on that address
// alone, which under a sustained call rate costs more per call the more
// ports wait in TIME_WAIT. A kernel without the option (before 4.2) binds
// as before.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
}

// peeker looks at what a connection has received without reading it
// (MSG_PEEK) and without waiting; it is part of a call, so that a peek
// allocates no buffer.
type peeker struct {
	buf [96]byte
	n   int
	err error
}

func (p *peeker) recv(fd uintptr) bool {
	p.n, _, p.err = unix.Recvfrom(int(fd), p.buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return true
}

// peek returns what conn has received and not yet read (up to 96
// octets); eof reports that the peer closed or reset the connection. A
// connection that is not a socket reports nothing.
func (p *peeker) peek(conn net.Conn) (b []byte, eof bool) {
	for {
		if sc, ok := conn.(syscall.Conn); ok {
			rc, err := sc.SyscallConn()
			if err != nil {
				return nil, false
			}
			if err := rc.Read(p.recv); err != nil {
				return nil, false
			}
			switch {
			case p.err == nil:
				return p.buf[:p.n], p.n == 0
			case errors.Is(p.err, unix.EAGAIN):
				return nil, false
			default: // reset
				return nil, true
			}
		}
		u, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		conn = u.NetConn()
	}
}
