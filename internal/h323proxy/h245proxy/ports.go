package h245proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
)

// PortRange is a range of TCP ports, Min to Max inclusive; the zero value
// means any port the system picks.
type PortRange struct {
	Min, Max uint16
}

// IsZero reports whether r leaves the port to the system.
func (r PortRange) IsZero() bool { return r.Min == 0 && r.Max == 0 }

// Valid reports whether r is zero or a proper range of non-zero ports.
func (r PortRange) Valid() bool { return r.IsZero() || r.Min != 0 && r.Min <= r.Max }

// Ports hands out the listening ports of H.245 bridges on one side: each
// bridge's listener binds a free port of its range, so a firewall (or the
// tunnel's inside node) can open, or mirror, exactly that range. The
// search starts after the last port handed out, so a port just freed is
// reused last. A nil or zero-range *Ports binds port 0.
type Ports struct {
	r    PortRange
	next atomic.Uint32
}

// NewPorts returns the port allocator of r.
func NewPorts(r PortRange) *Ports { return &Ports{r: r} }

// Range returns p's range (zero for a nil p).
func (p *Ports) Range() PortRange {
	if p == nil {
		return PortRange{}
	}
	return p.r
}

// Listen binds a TCP listener at ip on a free port of the range; every
// port taken, it fails with ErrPorts.
func (p *Ports) Listen(ip netip.Addr) (*net.TCPListener, error) {
	if p == nil || p.r.IsZero() {
		return net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	}
	n := uint32(p.r.Max) - uint32(p.r.Min) + 1
	start := p.next.Add(1)
	for i := range n {
		port := uint16(uint32(p.r.Min) + (start+i)%n)
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, port)))
		if err == nil {
			p.next.Store(start + i)
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: %s ports %d-%d", ErrPorts, ip, p.r.Min, p.r.Max)
}
