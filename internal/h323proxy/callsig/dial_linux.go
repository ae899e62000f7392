//go:build linux

package callsig

import (
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
