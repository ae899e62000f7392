package media

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FastPath selects whether latched streams are forwarded in the kernel by
// the eBPF program (fastpath_linux.go).
type FastPath uint8

const (
	// FastPathAuto (the default) loads the program when the kernel and the
	// process's privileges allow it and otherwise relays in user space.
	FastPathAuto FastPath = iota
	// FastPathOn requires the program: failing to load it fails the start.
	FastPathOn
	// FastPathOff relays every packet in user space.
	FastPathOff
)

func (f FastPath) String() string {
	switch f {
	case FastPathOn:
		return "on"
	case FastPathOff:
		return "off"
	}
	return "auto"
}

// ParseFastPath reads "auto", "on" or "off"; "" is auto.
func ParseFastPath(s string) (FastPath, error) {
	switch s {
	case "", "auto":
		return FastPathAuto, nil
	case "on":
		return FastPathOn, nil
	case "off":
		return FastPathOff, nil
	}
	return 0, fmt.Errorf("%q is not auto, on or off", s)
}

// fastEntry is a forwarding entry as installed in the kernel: datagrams
// from peer to local leave from src toward dst.
type fastEntry struct {
	local, peer, src, dst netip.AddrPort
}

// fastState is an endpoint's share of the fast path. mu is taken when an
// entry is installed, replaced or removed and when statistics are read,
// never for a packet user space forwards while the entry is current.
type fastState struct {
	mu  sync.Mutex
	cur atomic.Pointer[fastEntry]
	// failed is the entry the kernel refused (map full): not retried until
	// the wanted entry changes.
	failed fastEntry
	// packets, bytes and last (unix ns) are what removed entries carried.
	packets, bytes uint64
	last           int64
	// refreshed is when fastRefresh last read the entry (unix ns).
	refreshed atomic.Int64
}

// fastRefreshEvery bounds how often a re-latch candidate reads the kernel.
const fastRefreshEvery = 10 * time.Millisecond

// fastCounters are the kernel's counts for one endpoint.
type fastCounters struct {
	packets, bytes uint64
	last           int64 // unix ns, 0: none
	ssrc           uint32
	seq            uint16 // of the last packet
}

// fastWant returns the entry ep should have: its peer latched and heard
// in user space, the other leg's destination known, IPv4 throughout, and
// nothing the kernel program does not handle (H.460.19 keep-alives and
// multiplexing, dedicated RTCP sockets).
func fastWant(ep *endpoint) (fastEntry, bool) {
	if ep.rtcp || ep.muxSock || ep.dead.Load() || ep.lastRx.Load() == 0 || ep.keepAlive.Load() != 0 || ep.muxOut.Load() != nil {
		return fastEntry{}, false
	}
	p := ep.peer.Load()
	out := ep.out
	if p == nil || !p.latched || p.asym || out == nil || out.dead.Load() || out.muxOut.Load() != nil {
		return fastEntry{}, false
	}
	op := out.peer.Load()
	if op == nil || !op.latched && !op.asym {
		return fastEntry{}, false
	}
	e := fastEntry{local: ep.local, peer: p.addr, src: out.local, dst: op.addr}
	for _, a := range []netip.AddrPort{e.local, e.peer, e.src, e.dst} {
		if !a.IsValid() || !a.Addr().Unmap().Is4() || a.Port() == 0 {
			return fastEntry{}, false
		}
	}
	return e, true
}

// fastSeen is called by a packet worker after it accepted datagrams for
// ep: it installs, moves or withdraws the entries of ep and of the
// opposite endpoint (whose destination is ep's peer) when they no longer
// match. The common case is two atomic loads and a comparison.
func (r *Relay) fastSeen(ep *endpoint) {
	f := r.fast
	if f == nil || ep.rtcp || ep.muxSock {
		return
	}
	if cur := ep.fast.cur.Load(); cur != nil {
		if p, out := ep.peer.Load(), ep.out; p != nil && out != nil && cur.peer == p.addr && cur.dst == out.destination() {
			return
		}
	}
	f.sync(ep)
	if ep.out != nil {
		f.sync(ep.out)
	}
}

// fastForget withdraws ep's entry (teardown, or a new description of the
// leg); its counters are kept.
func (r *Relay) fastForget(ep *endpoint) {
	if r.fast == nil || ep == nil {
		return
	}
	ep.fast.mu.Lock()
	r.fast.remove(ep)
	ep.fast.mu.Unlock()
}

// fastRead returns what the kernel forwarded for ep, removed entries
// included.
func (r *Relay) fastRead(ep *endpoint) fastCounters {
	if r.fast == nil || ep == nil {
		return fastCounters{}
	}
	ep.fast.mu.Lock()
	defer ep.fast.mu.Unlock()
	c := fastCounters{packets: ep.fast.packets, bytes: ep.fast.bytes, last: ep.fast.last}
	if cur := ep.fast.cur.Load(); cur != nil {
		l := r.fast.lookup(cur)
		c.packets += l.packets
		c.bytes += l.bytes
		c.last = max(c.last, l.last)
	}
	return c
}

// fastRefresh brings what the kernel saw of ep's peer into ep before a
// re-latch is judged: the time of its last packet (so that a peer the
// kernel forwards is not taken for silent) and that packet's SSRC and
// sequence number (so that a NAT rebinding continues from it). It is
// called for a packet from a source that is not the latched peer, at most
// every fastRefreshEvery per endpoint, so that a flood of strangers costs
// no more than that in map look-ups.
func (r *Relay) fastRefresh(ep *endpoint, now int64) {
	if r.fast == nil {
		return
	}
	if last := ep.fast.refreshed.Load(); now-last < int64(fastRefreshEvery) || !ep.fast.refreshed.CompareAndSwap(last, now) {
		return
	}
	ep.fast.mu.Lock()
	cur := ep.fast.cur.Load()
	var k fastCounters
	if cur != nil {
		k = r.fast.lookup(cur)
	}
	ep.fast.mu.Unlock()
	if k.packets == 0 || k.last <= ep.lastRx.Load() {
		return
	}
	ep.lastRx.Store(k.last)
	ep.track.Store(uint64(k.ssrc)<<32 | trackValid | trackSeq | uint64(k.seq))
}

// sync makes ep's kernel entry the one fastWant describes.
func (f *fastPath) sync(ep *endpoint) {
	ep.fast.mu.Lock()
	defer ep.fast.mu.Unlock()
	want, ok := fastWant(ep)
	cur := ep.fast.cur.Load()
	if cur != nil && ok && *cur == want {
		return
	}
	if cur != nil {
		f.remove(ep)
	}
	if !ok || want == ep.fast.failed {
		return
	}
	if err := f.install(want); err != nil {
		ep.fast.failed = want
		f.fallback(err)
		return
	}
	ep.fast.failed = fastEntry{}
	installed := want // allocated only here, not on every call
	ep.fast.cur.Store(&installed)
}

// remove deletes ep's entry, keeping its counters. ep.fast.mu is held.
func (f *fastPath) remove(ep *endpoint) {
	cur := ep.fast.cur.Load()
	if cur == nil {
		return
	}
	c := f.delete(cur)
	ep.fast.packets += c.packets
	ep.fast.bytes += c.bytes
	ep.fast.last = max(ep.fast.last, c.last)
	ep.fast.cur.Store(nil)
}

// fastMetrics say which path runs and what the kernel forwarded.
type fastMetrics struct {
	path      *prometheus.GaugeVec
	fallbacks prometheus.Counter
	loaded    atomic.Pointer[fastPath]
}

func newFastMetrics(reg prometheus.Registerer) (*fastMetrics, error) {
	fm := &fastMetrics{
		path: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "portico", Subsystem: "media", Name: "fast_path",
			Help: "1 for the path that relays latched RTP: ebpf (in the kernel) or userspace.",
		}, []string{"path"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portico", Subsystem: "media", Name: "fast_path_fallbacks_total",
			Help: "Forwarding entries the kernel refused (map full); those streams stay in user space.",
		}),
	}
	kernel := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "portico", Subsystem: "media", Name: "fast_path_packets_total",
		Help: "Datagrams forwarded in the kernel by the eBPF fast path.",
	}, func() float64 {
		f := fm.loaded.Load()
		if f == nil {
			return 0
		}
		a, b := f.kernelTotals()
		return float64(a + b)
	})
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "portico", Subsystem: "media", Name: "fast_path_entries",
		Help: "Forwarding entries installed in the kernel.",
	}, func() float64 {
		if f := fm.loaded.Load(); f != nil {
			return float64(f.entries.Load())
		}
		return 0
	})
	if reg == nil {
		return fm, nil
	}
	for _, c := range []prometheus.Collector{fm.path, fm.fallbacks, kernel, entries} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			switch x := are.ExistingCollector.(type) {
			case *prometheus.GaugeVec:
				fm.path = x
			case prometheus.Counter:
				if c == fm.fallbacks {
					fm.fallbacks = x
				}
			}
		}
	}
	return fm, nil
}

func (r *Relay) setFastMetric(path string) {
	for _, p := range []string{"ebpf", "userspace"} {
		v := 0.0
		if p == path {
			v = 1
		}
		r.fm.path.WithLabelValues(p).Set(v)
	}
	r.fm.loaded.Store(r.fast)
}
