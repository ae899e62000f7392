//go:build !linux

package h323proxy

import "net"

const oobSize = 0

func setSockopts(fd uintptr, size int) (granted int, ovfl bool) { return 0, false }

func readRAS(c net.PacketConn, buf, _ []byte) (int, net.Addr, uint32, bool, error) {
	n, src, err := c.ReadFrom(buf)
	return n, src, 0, false, err
}
