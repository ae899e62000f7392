//go:build linux

package h323proxy

import (
	"encoding/binary"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// oobSize holds one SO_RXQ_OVFL control message.
var oobSize = unix.CmsgSpace(4)

func setSockopts(fd uintptr, size int) (granted int, ovfl bool) {
	if size > 0 {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	}
	granted, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	ovfl = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1) == nil
	return granted, ovfl
}

// readRAS reads one datagram into buf; drops is the socket's cumulative
// kernel drop count when the kernel reported it with this datagram. oob
// is the caller's buffer of oobSize bytes (nil: the count is not read).
func readRAS(c net.PacketConn, buf, oob []byte) (n int, src net.Addr, drops uint32, reported bool, err error) {
	u, ok := c.(*net.UDPConn)
	if !ok || oob == nil {
		n, src, err = c.ReadFrom(buf)
		return n, src, 0, false, err
	}
	n, oobn, _, ap, err := u.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return n, nil, 0, false, err
	}
	drops, reported = rxqOverflow(oob[:oobn])
	return n, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())), drops, reported, nil
}

// rxqOverflow finds the SO_RXQ_OVFL count among control messages
// (struct cmsghdr: length as a size_t, then level and type as int32)
// without allocating.
func rxqOverflow(b []byte) (uint32, bool) {
	word := unix.SizeofCmsghdr - 8 // sizeof(size_t)
	for len(b) >= unix.SizeofCmsghdr {
		var l int
		if word == 8 {
			l = int(binary.NativeEndian.Uint64(b))
		} else {
			l = int(binary.NativeEndian.Uint32(b))
		}
		level := int32(binary.NativeEndian.Uint32(b[word:]))
		typ := int32(binary.NativeEndian.Uint32(b[word+4:]))
		if l < unix.SizeofCmsghdr || l > len(b) {
			return 0, false
		}
		if level == unix.SOL_SOCKET && typ == unix.SO_RXQ_OVFL && l-unix.CmsgLen(0) >= 4 {
			return binary.NativeEndian.Uint32(b[unix.CmsgLen(0):]), true
		}
		sp := unix.CmsgSpace(l - unix.CmsgLen(0))
		if sp >= len(b) {
			return 0, false
		}
		b = b[sp:]
	}
	return 0, false
}
