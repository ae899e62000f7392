package tunnel

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Auto-discovery: a client with no Server finds the DMZ node from a DNS SRV
// record (RFC 2782), e.g. _portico-tunnel._udp.example.com. Each connection
// attempt resolves the record again, so a changed record takes effect at
// the next reconnect. The targets are tried in the record's order
// (priority, then weight at random), one per attempt: after a failed
// attempt the next target is tried, so a client moves to a backup when the
// preferred node does not answer.

// resolver is the DNS resolver of a client: the system's, or the Resolver
// address of the config.
func resolver(cfg Config) *net.Resolver {
	if cfg.Resolver == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, cfg.Resolver)
	}}
}

// serverAddr is the address the client dials for attempt n: the configured
// Server, or the n-th (modulo) target of the SRV record.
func (c *Client) serverAddr(ctx context.Context, n int) (*net.UDPAddr, error) {
	if c.cfg.Server != "" {
		return net.ResolveUDPAddr("udp", c.cfg.Server)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r := resolver(c.cfg)
	_, srvs, err := r.LookupSRV(ctx, "", "", c.cfg.Discover)
	if err != nil {
		return nil, fmt.Errorf("tunnel: discover %s: %w", c.cfg.Discover, err)
	}
	// A single "." target means the service is not offered (RFC 2782).
	if len(srvs) == 0 || len(srvs) == 1 && srvs[0].Target == "." {
		return nil, fmt.Errorf("tunnel: discover %s: %w", c.cfg.Discover, ErrNoServer)
	}
	s := srvs[n%len(srvs)]
	host := strings.TrimSuffix(s.Target, ".")
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("tunnel: discover %s: target %s: %w", c.cfg.Discover, host, err)
	}
	addr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(ips[0].Unmap(), s.Port))
	c.log.Debug("tunnel server discovered", "name", c.cfg.Discover, "target", host, "addr", addr.String())
	return addr, nil
}

// server names the tunnel server in logs: the configured address or the
// SRV name.
func (c *Client) server() string {
	if c.cfg.Server != "" {
		return c.cfg.Server
	}
	return "SRV " + c.cfg.Discover
}
