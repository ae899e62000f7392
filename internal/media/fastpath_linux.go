//go:build linux

package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// fastKey and fastValue mirror struct flow_key and struct flow_value of
// bpf/fastpath.c; addresses and ports are in network byte order.
type fastKey struct {
	LocalAddr, PeerAddr [4]byte
	LocalPort, PeerPort [2]byte
}

type fastValue struct {
	SrcAddr, DstAddr [4]byte
	SrcPort, DstPort [2]byte
	Ifindex          uint32
	Packets, Bytes   uint64
	LastNs           uint64
	SSRC             [4]byte
	Seq              [2]byte
	Flags            uint16
}

// fastLoopback marks an entry whose interface is a loopback device
// (FLOW_LOOPBACK in bpf/fastpath.c).
const fastLoopback = 1

// fastOut is where datagrams from one relay address leave.
type fastOut struct {
	ifindex  uint32
	loopback bool
}

func be16(p uint16) [2]byte { return [2]byte{byte(p >> 8), byte(p)} }

// fastPath is the loaded program, its maps and its tcx links.
type fastPath struct {
	objs  fastpathObjects
	links []link.Link
	names []string
	// out is where datagrams from each relay address leave.
	out    map[netip.Addr]fastOut
	monoNs int64 // wall clock minus CLOCK_MONOTONIC, for last_ns
	log    *slog.Logger

	entries   atomic.Int64
	fallbacks interface{ Inc() }
	lastWarn  atomic.Int64

	// closeMu orders a metrics scrape (kernelTotals, read-held) before or
	// after close (held): a scrape never reads a map being closed.
	closeMu sync.RWMutex
	closed  bool
}

// fastEntries sizes the flows map: one entry per RTP socket the port
// ranges can hold.
func fastEntries(c *Config) int {
	n := 0
	for _, ic := range c.Interfaces {
		n += (ic.PortMax - ic.PortMin + 1) / 2
	}
	return max(n, 64)
}

// fastInterfaces returns the network interfaces that carry the relay's
// IPv4 addresses in the calling thread's network namespace; a loopback
// address (127.0.0.0/8) that no interface carries is on lo.
func fastInterfaces(c *Config) ([]net.Interface, map[netip.Addr]fastOut, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, nil, err
	}
	var out []net.Interface
	via := map[netip.Addr]fastOut{}
	seen := map[int]bool{}
	names := make([]string, 0, len(c.Interfaces))
	for n := range c.Interfaces {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := c.Interfaces[n].Addr.Unmap()
		if !a.Is4() {
			continue
		}
		if a.IsUnspecified() {
			return nil, nil, fmt.Errorf("interface %q: address %v names no interface", n, a)
		}
		var found *net.Interface
		for i := range ifs {
			addrs, err := ifs[i].Addrs()
			if err != nil {
				continue
			}
			for _, x := range addrs {
				if p, ok := x.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(p.IP); ok && ip.Unmap() == a {
						found = &ifs[i]
					}
				}
			}
			if found == nil && a.IsLoopback() && ifs[i].Flags&net.FlagLoopback != 0 {
				found = &ifs[i]
			}
			if found != nil {
				break
			}
		}
		if found == nil {
			return nil, nil, fmt.Errorf("interface %q: no network interface has address %v", n, a)
		}
		via[a] = fastOut{ifindex: uint32(found.Index), loopback: found.Flags&net.FlagLoopback != 0}
		if !seen[found.Index] {
			seen[found.Index] = true
			out = append(out, *found)
		}
	}
	if len(out) == 0 {
		return nil, nil, errors.New("no IPv4 relay address")
	}
	return out, via, nil
}

// startFast loads and attaches the program as r.cfg.FastPath asks. It
// runs on the thread that creates the engine, whose network namespace the
// relay's sockets and the tcx links share.
func (r *Relay) startFast() error {
	mode := r.cfg.FastPath
	if mode == FastPathOff {
		r.setFastMetric("userspace")
		r.log.Info("media fast path off: every packet is relayed in user space")
		return nil
	}
	f, err := loadFast(r)
	if err != nil {
		if mode == FastPathOn {
			return fmt.Errorf("media: fast_path on: %w", err)
		}
		r.setFastMetric("userspace")
		r.log.Info("media fast path unavailable: every packet is relayed in user space", "reason", err.Error())
		return nil
	}
	r.fast = f
	r.setFastMetric("ebpf")
	r.log.Info("media fast path: latched RTP is forwarded in the kernel (eBPF tcx)", "interfaces", f.names)
	return nil
}

func loadFast(r *Relay) (*fastPath, error) {
	ifs, via, err := fastInterfaces(&r.cfg)
	if err != nil {
		return nil, err
	}
	spec, err := loadFastpath()
	if err != nil {
		return nil, fmt.Errorf("load object: %w", err)
	}
	spec.Maps["flows"].MaxEntries = uint32(fastEntries(&r.cfg))
	f := &fastPath{log: r.log, out: via}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		return nil, fmt.Errorf("load program: %w", err)
	}
	for _, ifc := range ifs {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: f.objs.RelayIngress, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			f.close()
			return nil, fmt.Errorf("attach tcx ingress to %s: %w", ifc.Name, err)
		}
		f.links = append(f.links, l)
		f.names = append(f.names, ifc.Name)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		f.close()
		return nil, err
	}
	f.monoNs = time.Now().UnixNano() - ts.Nano()
	f.fallbacks = r.fm.fallbacks
	return f, nil
}

func (f *fastPath) close() {
	if f == nil {
		return
	}
	f.closeMu.Lock()
	defer f.closeMu.Unlock()
	f.closed = true
	for _, l := range f.links {
		l.Close()
	}
	f.objs.Close()
}

func fastKeyOf(e *fastEntry) fastKey {
	return fastKey{
		LocalAddr: e.local.Addr().Unmap().As4(), PeerAddr: e.peer.Addr().Unmap().As4(),
		LocalPort: be16(e.local.Port()), PeerPort: be16(e.peer.Port()),
	}
}

func (f *fastPath) install(e fastEntry) error {
	k := fastKeyOf(&e)
	out, ok := f.out[e.src.Addr().Unmap()]
	if !ok {
		return fmt.Errorf("install %v->%v: %v is on no attached interface", e.peer, e.local, e.src.Addr())
	}
	v := fastValue{
		Ifindex: out.ifindex,
		SrcAddr: e.src.Addr().Unmap().As4(), DstAddr: e.dst.Addr().Unmap().As4(),
		SrcPort: be16(e.src.Port()), DstPort: be16(e.dst.Port()),
	}
	if out.loopback {
		v.Flags = fastLoopback
	}
	if err := f.objs.Flows.Update(&k, &v, ebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("install %v->%v: %w", e.peer, e.local, err)
	}
	f.entries.Add(1)
	return nil
}

// delete removes e atomically and returns its counters.
func (f *fastPath) delete(e *fastEntry) fastCounters {
	k := fastKeyOf(e)
	var v fastValue
	if err := f.objs.Flows.LookupAndDelete(&k, &v); err != nil {
		return fastCounters{}
	}
	f.entries.Add(-1)
	return f.counters(&v)
}

func (f *fastPath) lookup(e *fastEntry) fastCounters {
	k := fastKeyOf(e)
	var v fastValue
	if err := f.objs.Flows.Lookup(&k, &v); err != nil {
		return fastCounters{}
	}
	return f.counters(&v)
}

func (f *fastPath) counters(v *fastValue) fastCounters {
	c := fastCounters{packets: v.Packets, bytes: v.Bytes,
		ssrc: uint32(v.SSRC[0])<<24 | uint32(v.SSRC[1])<<16 | uint32(v.SSRC[2])<<8 | uint32(v.SSRC[3]),
		seq:  uint16(v.Seq[0])<<8 | uint16(v.Seq[1])}
	if v.LastNs != 0 {
		c.last = int64(v.LastNs) + f.monoNs
	}
	return c
}

// fallback counts an entry the kernel refused; the stream stays in user
// space. The log is limited to one line a minute.
func (f *fastPath) fallback(err error) {
	f.fallbacks.Inc()
	now := time.Now().UnixNano()
	if last := f.lastWarn.Load(); now-last >= int64(time.Minute) && f.lastWarn.CompareAndSwap(last, now) {
		f.log.Warn("media fast path: entry refused, stream stays in user space", "err", err)
	}
}

// kernelTotals returns the datagrams the program sent out of real
// interfaces and back through loopback.
func (f *fastPath) kernelTotals() (redirected, passed uint64) {
	f.closeMu.RLock()
	defer f.closeMu.RUnlock()
	if f.closed {
		return 0, 0
	}
	for i, dst := range []*uint64{&redirected, &passed} {
		var per []uint64
		if f.objs.Totals.Lookup(uint32(i), &per) == nil {
			for _, n := range per {
				*dst += n
			}
		}
	}
	return redirected, passed
}
