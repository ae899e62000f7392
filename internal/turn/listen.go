package turn

import (
	"context"
	"net"
	"net/netip"
)

// listenUDP binds n SO_REUSEPORT sockets on addr, so that the kernel spreads
// clients (by 4-tuple hash, so a client always reaches the same socket) over
// n engine read loops. A port 0 address gets one socket.
func listenUDP(ctx context.Context, addr string, n, bufKB int) ([]net.PacketConn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	if ap.Port() == 0 || n < 1 {
		n = 1
	}
	lc := net.ListenConfig{Control: reuseAddrPort}
	out := make([]net.PacketConn, 0, n)
	for range n {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			for _, c := range out {
				_ = c.Close()
			}
			return nil, err
		}
		setBuffers(pc, bufKB)
		out = append(out, pc)
	}
	return out, nil
}

// setBuffers sizes a UDP socket's buffers; the kernel caps them at
// net.core.rmem_max and wmem_max, which is not an error.
func setBuffers(pc net.PacketConn, kb int) {
	if u, ok := pc.(*net.UDPConn); ok && kb > 0 {
		_ = u.SetReadBuffer(kb << 10)
		_ = u.SetWriteBuffer(kb << 10)
	}
}
