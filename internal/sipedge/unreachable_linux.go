package sipedge

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// icmpConn is a UDP socket with IP_RECVERR whose queued ICMP errors are
// reported instead of failing its reads and writes.
type icmpConn struct {
	net.PacketConn
	rc     syscall.RawConn
	report func(netip.AddrPort)
}

// newICMPConn turns on IP_RECVERR (and IPV6_RECVERR) on pc; nil when pc is
// not a socket or refuses both.
func newICMPConn(pc net.PacketConn, report func(netip.AddrPort)) net.PacketConn {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	set := false
	rc.Control(func(fd uintptr) {
		if syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVERR, 1) == nil {
			set = true
		}
		if syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVERR, 1) == nil {
			set = true
		}
	})
	if !set {
		return nil
	}
	return &icmpConn{PacketConn: pc, rc: rc, report: report}
}

func (c *icmpConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(b)
		if err != nil && c.icmp(err) {
			continue
		}
		return n, a, err
	}
}

// WriteTo retries a write that failed with the error of an earlier
// datagram (the kernel reports a pending ICMP error on the next send and
// sends nothing).
func (c *icmpConn) WriteTo(b []byte, a net.Addr) (int, error) {
	for range 3 {
		n, err := c.PacketConn.WriteTo(b, a)
		if err == nil || !c.icmp(err) {
			return n, err
		}
	}
	return c.PacketConn.WriteTo(b, a)
}

// icmp reports whether err is a queued ICMP error and, if so, reports the
// destinations in the socket's error queue.
func (c *icmpConn) icmp(err error) bool {
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.EHOSTUNREACH) && !errors.Is(err, syscall.ENETUNREACH) {
		return false
	}
	var dests []netip.AddrPort
	buf, oob := make([]byte, 256), make([]byte, 256)
	c.rc.Control(func(fd uintptr) {
		for range 64 {
			_, oobn, _, from, err := syscall.Recvmsg(int(fd), buf, oob, syscall.MSG_ERRQUEUE)
			if err != nil {
				return // EAGAIN: the queue is empty
			}
			if ap, ok := sockaddrAddrPort(from); ok && unreachableErr(oob[:oobn]) {
				dests = append(dests, ap)
			}
		}
	})
	for _, ap := range dests {
		c.report(ap)
	}
	return true
}

// unreachableErr reports whether a MSG_ERRQUEUE control message carries a
// destination, host or network unreachable error (struct sock_extended_err
// starts with ee_errno).
func unreachableErr(oob []byte) bool {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if !(m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_RECVERR) &&
			!(m.Header.Level == syscall.IPPROTO_IPV6 && m.Header.Type == syscall.IPV6_RECVERR) {
			continue
		}
		if len(m.Data) < 4 {
			continue
		}
		switch syscall.Errno(binary.NativeEndian.Uint32(m.Data)) {
		case syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH:
			return true
		}
	}
	return false
}

func sockaddrAddrPort(sa syscall.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}
