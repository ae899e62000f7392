package media

import (
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
)

// Latching selects which sources may become a leg's peer (RFC 7362).
type Latching uint8

const (
	// LatchStrict (the default) accepts only packets whose source IP is the
	// signalled one; the port may differ (it is learnt from the first packet).
	LatchStrict Latching = iota
	// LatchNAT accepts the first packet from any address as the peer, for
	// endpoints behind NAT whose signalled address is private.
	LatchNAT
)

func (l Latching) String() string {
	if l == LatchNAT {
		return "nat"
	}
	return "strict"
}

// Defaults applied by New to zero fields.
const (
	DefaultSocketBuffer      = 4 << 20
	DefaultRelatchQuiet      = 2 * time.Second
	DefaultInactivityTimeout = 60 * time.Second
	DefaultBatchSize         = 32
)

// InterfaceConfig is one relay interface: the local address its sockets bind
// and the inclusive port range they take ports from.
type InterfaceConfig struct {
	// Addr is the local IP address the relay's sockets bind. Required.
	Addr netip.Addr
	// Advertised is the address written in SDP for this interface when it
	// differs from Addr (static NAT in front of the relay). Default: Addr.
	Advertised netip.Addr
	// PortMin and PortMax bound the ports used, inclusive. RTP takes an even
	// port and RTCP the next one, so the range holds (PortMax-PortMin+1)/2
	// streams per leg. Required; 1024 <= PortMin < PortMax <= 65535.
	PortMin, PortMax int
	// MultiplexPort, when not zero, opens the interface's H.460.19
	// multiplexed ports: RTP on this even port, RTCP on the next, outside
	// every interface's range. Default: none.
	MultiplexPort int
	// LatchFrom is, with LatchNAT, an IP address from which a leg on this
	// interface may latch besides its signalled IP, when the leg has no
	// signalling source of its own: the address a tunnel delivers the
	// interface's peers' media from. Default: none.
	LatchFrom netip.Addr
}

// Config configures a Relay. Zero fields take the defaults stated.
type Config struct {
	// Interfaces maps an interface name ("external", "internal", ...) to its
	// address and port range. At least one is required. Ranges must not overlap.
	Interfaces map[string]InterfaceConfig
	// SocketBuffer is each relay socket's receive and send buffer in bytes,
	// set deliberately because the kernel default (about 200 KiB) queues or
	// drops bursts across hundreds of sockets. Default 4 MiB (DefaultSocketBuffer);
	// -1 leaves the kernel default. Maximum 64 MiB.
	SocketBuffer int
	// Latching is LatchStrict (default) or LatchNAT.
	Latching Latching
	// RelatchQuiet is how long a latched peer must have been silent before a
	// new source (new SSRC or NAT rebinding) may take its place. Default 2s;
	// -1 never re-latches.
	RelatchQuiet time.Duration
	// InactivityTimeout reports a session whose streams (not on hold) carried
	// no packet for this long through Deps.OnTimeout. Default 60s; -1 disables.
	InactivityTimeout time.Duration
	// BatchSize is how many datagrams one recvmmsg/sendmmsg moves. Default 32,
	// range 1..1024.
	BatchSize int
	// Workers is the number of packet workers (Linux). Default one per CPU
	// (at most 256): on a 2-core machine two workers carried about 1.6
	// times one worker's packets/s within a 5 ms p99, and 1,000 calls with
	// a lower p99, for about 25% more CPU per packet (docs/performance.md,
	// "Media relay workers").
	Workers int
	// FastPath forwards latched RTP in the kernel (eBPF): FastPathAuto
	// (default) when it loads, FastPathOn or a start error, FastPathOff
	// never.
	FastPath FastPath
}

// FieldError is a validation failure naming the config path (the shared
// configuration field error).
type FieldError = field.Error

// ConfigError lists every invalid field.
type ConfigError = field.Errors

// withDefaults returns c with defaults applied and validates it.
func (c Config) withDefaults() (Config, error) {
	var errs ConfigError
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
	}
	if len(c.Interfaces) == 0 {
		add("media.interfaces", "at least one interface is required")
	}
	names := make([]string, 0, len(c.Interfaces))
	for n := range c.Interfaces {
		names = append(names, n)
	}
	sort.Strings(names)
	valid := make([]string, 0, len(names))
	for _, n := range names {
		ic := c.Interfaces[n]
		p := "media.interfaces." + n
		ok := true
		if n == "" {
			add("media.interfaces", "empty interface name")
			ok = false
		}
		if !ic.Addr.IsValid() {
			add(p+".addr", "required")
			ok = false
		}
		for _, f := range []struct {
			name string
			v    int
		}{{"port_min", ic.PortMin}, {"port_max", ic.PortMax}} {
			if f.v < 1 || f.v > 65535 {
				add(p+"."+f.name, "%d is not a port", f.v)
				ok = false
			} else if f.v < 1024 {
				add(p+"."+f.name, "%d is a privileged port (want 1024..65535)", f.v)
				ok = false
			}
		}
		if ok && ic.PortMin >= ic.PortMax {
			add(p+".port_min", "%d is not below port_max %d", ic.PortMin, ic.PortMax)
			ok = false
		}
		if ok && (ic.PortMax-ic.PortMin+1)/2 < 1 {
			add(p, "range %d-%d holds no even/odd port pair", ic.PortMin, ic.PortMax)
			ok = false
		}
		if m := ic.MultiplexPort; m != 0 && (m < 1024 || m > 65534 || m%2 != 0) {
			add(p+".multiplex_port", "%d is not an even port in 1024..65534", m)
		}
		if ok {
			valid = append(valid, n)
		}
	}
	for _, a := range valid {
		m := c.Interfaces[a].MultiplexPort
		if m == 0 {
			continue
		}
		for _, b := range valid {
			if ib := c.Interfaces[b]; m+1 >= ib.PortMin && m <= ib.PortMax {
				add("media.interfaces."+a+".multiplex_port", "%d is inside media.interfaces.%s %d-%d", m, b, ib.PortMin, ib.PortMax)
			}
		}
	}
	for i, a := range valid {
		for _, b := range valid[:i] {
			ia, ib := c.Interfaces[a], c.Interfaces[b]
			if ia.PortMin <= ib.PortMax && ib.PortMin <= ia.PortMax {
				add("media.interfaces."+a, "%d-%d overlaps media.interfaces.%s %d-%d", ia.PortMin, ia.PortMax, b, ib.PortMin, ib.PortMax)
			}
		}
	}
	switch {
	case c.SocketBuffer == 0:
		c.SocketBuffer = DefaultSocketBuffer
	case c.SocketBuffer == -1:
	case c.SocketBuffer < 4096 || c.SocketBuffer > 64<<20:
		add("media.socket_buffer", "%d bytes is outside 4096..67108864 (or -1 for the kernel default)", c.SocketBuffer)
	}
	if c.Latching > LatchNAT {
		add("media.latching", "%d is not strict or nat", c.Latching)
	}
	switch {
	case c.RelatchQuiet == 0:
		c.RelatchQuiet = DefaultRelatchQuiet
	case c.RelatchQuiet < 0 && c.RelatchQuiet != -1:
		add("media.relatch_quiet", "%v is negative", c.RelatchQuiet)
	}
	switch {
	case c.InactivityTimeout == 0:
		c.InactivityTimeout = DefaultInactivityTimeout
	case c.InactivityTimeout < 0 && c.InactivityTimeout != -1:
		add("media.inactivity_timeout", "%v is negative", c.InactivityTimeout)
	}
	switch {
	case c.BatchSize == 0:
		c.BatchSize = DefaultBatchSize
	case c.BatchSize < 1 || c.BatchSize > 1024:
		add("media.batch_size", "%d is outside 1..1024", c.BatchSize)
	}
	switch {
	case c.Workers == 0:
		c.Workers = min(runtime.NumCPU(), 256)
	case c.Workers < 0 || c.Workers > 256:
		add("media.workers", "%d is outside 1..256", c.Workers)
	}
	if c.FastPath > FastPathOff {
		add("media.fast_path", "%d is not auto, on or off", c.FastPath)
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("media: invalid config: %w", errs)
	}
	return c, nil
}
