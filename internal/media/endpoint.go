package media

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-edge/portico/internal/batchio"
	"github.com/portico-edge/portico/internal/media/rtp"
)

// peer is a leg's remote endpoint as seen by one socket. It is replaced
// whole (atomic.Pointer), never mutated, so the packet path reads it without
// a lock.
type peer struct {
	addr      netip.AddrPort // where packets for this leg go: latched or signalled
	signalled netip.AddrPort
	latched   bool
	ssrc      uint32
}

// endpoint is one relay socket: a leg's RTP or RTCP socket of a stream.
type endpoint struct {
	r     *Relay
	st    *stream
	leg   uint8
	rtcp  bool // dedicated RTCP socket
	out   *endpoint
	local netip.AddrPort
	sys   sysSock

	ports *portRef // returned to the pool when the last socket of the pair closes

	peer   atomic.Pointer[peer]
	lastRx atomic.Int64 // unix nanoseconds of the last accepted packet
	dead   atomic.Bool

	packets, bytes, forwarded, dropped atomic.Uint64
}

// portRef counts the open sockets of a reserved port pair.
type portRef struct {
	pool *portPool
	port int
	refs atomic.Int32
}

func (p *portRef) done() {
	if p != nil && p.refs.Add(-1) == 0 {
		p.pool.put(p.port)
	}
}

// srRecord remembers when an SR with NTP middle bits mid passed the relay.
type srRecord struct {
	mid uint32
	at  int64
}

// legRTCP holds what a leg's endpoint reported in RTCP.
type legRTCP struct {
	lost     atomic.Int64
	fraction atomic.Uint32 // /256
	jitterUs atomic.Uint64
	rttUs    atomic.Uint64
	reports  atomic.Uint64
}

// stream is one relayed stream of a session.
type stream struct {
	index   int
	cfg     StreamConfig // guarded by the session's mu
	hold    atomic.Bool
	legs    [2]legSocks
	rtcp    [2]legRTCP
	srMu    sync.Mutex // held for nanoseconds, by packet workers only
	sr      [2][4]srRecord
	srNext  [2]int
	clockHz uint32
	secure  bool
	worker  int
	tcp     *tcpStream
}

type legSocks struct {
	port      int // even port reserved in the interface's pool, 0 if none
	iface     *iface
	rtp, rtcp *endpoint
}

// admit decides whether a datagram from m.Addr is this endpoint's peer,
// latching or re-latching per RFC 7362 section 4.1. It never allocates
// except when the peer changes.
func (ep *endpoint) admit(m *batchio.Message, now int64, t *tally) bool {
	p := ep.peer.Load()
	if p != nil && p.latched && p.addr == m.Addr {
		return true
	}
	cfg := &ep.r.cfg
	var signalled netip.AddrPort
	if p != nil {
		signalled = p.signalled
	}
	if cfg.Latching == LatchStrict && (!signalled.IsValid() || signalled.Addr() != m.Addr.Addr()) {
		ep.dropped.Add(1)
		t.strangers++
		return false
	}
	data := m.Data()
	class := rtp.Classify(data)
	var ssrc uint32
	if class == rtp.ClassRTP || class == rtp.ClassRTCP {
		ssrc, _ = rtp.SSRC(data)
	}
	if p != nil && p.latched {
		// A latched peer is replaced only after it fell silent, and only by
		// RTP/RTCP (a new SSRC, or the same one after a NAT rebinding).
		quiet := cfg.RelatchQuiet
		if quiet < 0 || now-ep.lastRx.Load() < int64(quiet) || (class != rtp.ClassRTP && class != rtp.ClassRTCP) {
			ep.dropped.Add(1)
			t.strangers++
			return false
		}
		t.relatched++
	}
	ep.peer.Store(&peer{addr: m.Addr, signalled: signalled, latched: true, ssrc: ssrc})
	return true
}

// observe reads RTCP statistics from an accepted datagram.
func (ep *endpoint) observe(data []byte, now int64, rep *rtp.Report) {
	st := ep.st
	if st.secure || len(data) < 8 {
		return
	}
	if !ep.rtcp && rtp.Classify(data) != rtp.ClassRTCP {
		return
	}
	if rtp.ParseCompound(data, rep) != nil && rep.Packets == 0 {
		return
	}
	leg := ep.leg
	lr := &st.rtcp[leg]
	lr.reports.Add(1)
	if rep.HasSR {
		st.srMu.Lock()
		i := st.srNext[leg]
		st.sr[leg][i] = srRecord{mid: uint32(rep.Sender.NTP >> 16), at: now}
		st.srNext[leg] = (i + 1) % len(st.sr[leg])
		st.srMu.Unlock()
	}
	if rep.NBlocks == 0 {
		return
	}
	b := &rep.Blocks[0]
	lr.lost.Store(int64(b.TotalLost))
	lr.fraction.Store(uint32(b.FractionLost))
	if st.clockHz > 0 {
		lr.jitterUs.Store(uint64(b.Jitter) * 1_000_000 / uint64(st.clockHz))
	}
	if b.LSR != 0 {
		other := 1 - leg
		st.srMu.Lock()
		for _, rec := range st.sr[other] {
			if rec.at != 0 && rec.mid == b.LSR {
				dlsr := int64(b.DLSR) * int64(time.Second) / 65536
				if rtt := now - rec.at - dlsr; rtt >= 0 {
					lr.rttUs.Store(uint64(rtt / 1000))
				}
				break
			}
		}
		st.srMu.Unlock()
	}
}

// destination returns where datagrams leaving through ep go.
func (ep *endpoint) destination() netip.AddrPort {
	if p := ep.peer.Load(); p != nil {
		return p.addr
	}
	return netip.AddrPort{}
}

func (ep *endpoint) setSignalled(addr netip.AddrPort) {
	old := ep.peer.Load()
	if old != nil && old.signalled == addr {
		return
	}
	if old != nil && old.latched && (ep.r.cfg.Latching == LatchNAT || (addr.IsValid() && old.addr.Addr() == addr.Addr())) {
		ep.peer.Store(&peer{addr: old.addr, signalled: addr, latched: true, ssrc: old.ssrc})
		return
	}
	ep.peer.Store(&peer{addr: addr, signalled: addr})
}
