//go:build linux

package udpbuf

import (
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

func setReceiveBuffer(fd uintptr, size int) (granted int) {
	if size > 0 {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	}
	granted, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	return granted
}

// skMeminfoDrops is SK_MEMINFO_DROPS, the index of sk_drops in the
// SO_MEMINFO array (linux/sock_diag.h).
const skMeminfoDrops = 8

// socketDrops reads the socket's sk_drops with SO_MEMINFO (Linux 3.15).
func socketDrops(fd uintptr) (uint64, bool) {
	var info [skMeminfoDrops + 1]uint32
	l := uint32(unsafe.Sizeof(info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 || l < uint32(unsafe.Sizeof(info)) {
		return 0, false
	}
	return uint64(info[skMeminfoDrops]), true
}

// Least is the smallest receive buffer Tune(c, size) reports granted on
// this machine: size itself as root (SO_RCVBUFFORCE; the kernel reports
// double), else size capped at net.core.rmem_max.
func Least(size int) int {
	if os.Geteuid() == 0 {
		return size
	}
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return 0
	}
	max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return min(size, max)
}
