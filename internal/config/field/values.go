package field

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Duration is a time.Duration written as "30s" or "15m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText writes the duration as Go syntax ("1m30s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads Go duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// PortRange is an inclusive UDP/TCP port range.
type PortRange struct {
	Min int `yaml:"port_min" json:"port_min"`
	Max int `yaml:"port_max" json:"port_max"`
}

// The checks below are the ones several sections share; each adds an
// Error at path when s is not what it should be.

// Positive checks that d is above zero.
func (es *Errors) Positive(path string, d Duration) {
	if d <= 0 {
		es.Add(path, "%s must be positive", d.D())
	}
}

// CIDR checks a network in address/bits form without host bits.
func (es *Errors) CIDR(path, s string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		es.Add(path, "%q is not a CIDR (address/bits)", s)
		return
	}
	if p.Masked() != p {
		es.Add(path, "%q has host bits set; did you mean %s?", s, p.Masked())
	}
}

// IP checks an IP address.
func (es *Errors) IP(path, s string) {
	if _, err := netip.ParseAddr(s); err != nil {
		es.Add(path, "%q is not an IP address", s)
	}
}

// HostPort checks an ip:port (or :port) listen address.
func (es *Errors) HostPort(path, s string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		es.Add(path, "%q is not host:port", s)
		return
	}
	if host != "" {
		es.IP(path, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		es.Add(path, "%s is not a port", port)
	}
}

// PortRange checks an unprivileged range holding at least an RTP/RTCP
// pair twice, and reports whether it was good.
func (es *Errors) PortRange(path string, r PortRange) bool {
	ok := true
	for _, p := range []struct {
		name string
		n    int
	}{{"port_min", r.Min}, {"port_max", r.Max}} {
		if p.n < 1024 || p.n > 65535 {
			es.Add(path+"."+p.name, "%d is not an unprivileged port (1024-65535)", p.n)
			ok = false
		}
	}
	if ok && r.Min > r.Max {
		es.Add(path, "port_min %d is above port_max %d", r.Min, r.Max)
		ok = false
	}
	if ok && r.Max-r.Min < 3 {
		es.Add(path, "%d-%d holds fewer than 4 ports (an RTP/RTCP pair needs 2)", r.Min, r.Max)
		ok = false
	}
	return ok
}

// Join is fmt.Sprintf for a path element with an index ("turn.udp", 2 →
// "turn.udp[2]").
func Join(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }
