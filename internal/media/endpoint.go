package media

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-edge/portico/internal/batchio"
	"github.com/portico-edge/portico/internal/media/rtp"
)

// peer is a leg's remote endpoint as seen by one socket. It is replaced
// whole (atomic.Pointer), never mutated, so the packet path reads it without
// a lock. The sources allowed to become the peer are two IP addresses
// compared by value: the signalled one and, with LatchNAT, the one the
// leg's signalling came from.
type peer struct {
	addr      netip.AddrPort // where packets for this leg go: latched or signalled
	signalled netip.AddrPort
	source    netip.Addr // signalling source (LatchNAT only); zero: none
	latched   bool
	asym      bool // never latch: packets go to the signalled address
	strict    bool // once latched, never re-latch
}

// known reports whether a is the signalled IP or the signalling source.
// a is a packet's source, never the zero Addr, so zero fields match nothing.
func (p *peer) known(a netip.Addr) bool {
	return a == p.signalled.Addr() || a == p.source
}

// What endpoint.track holds besides the SSRC in its upper 32 bits.
const (
	trackValid = 1 << 17 // an RTP or RTCP packet was accepted
	trackSeq   = 1 << 16 // the low 16 bits are the last RTP sequence number
	// maxDropout is how far ahead a sequence number may jump and still
	// continue the stream (RFC 3550 appendix A.1).
	maxDropout = 3000
)

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
	// track is the SSRC and sequence number of the last RTP (or, on a
	// socket without RTP, RTCP) packet accepted from the peer: the evidence
	// a packet from a new source must continue to re-latch. Only the
	// endpoint's packet worker reads and writes it.
	// With multiplexed media (mux.go) the multiplexed socket's worker
	// admits packets for the endpoint too, hence atomic.
	track atomic.Uint64
	dead  atomic.Bool
	// muxSock marks an interface's multiplexed socket (mux.go): its
	// datagrams belong to the leg their multiplexID selects.
	muxSock bool
	// muxOut, when set, is how datagrams toward this endpoint's peer leave
	// (H.460.19 multiplexing).
	muxOut atomic.Pointer[muxSend]
	// keepAlive is keepAliveOn plus the payload type of the leg's
	// H.460.19 keep-alives on an RTP socket, 0 when the leg sends none.
	keepAlive atomic.Uint32

	packets, bytes, forwarded, dropped, keepAlives atomic.Uint64

	fast fastState // its entry in the eBPF fast path (fastpath.go)
}

// keepAliveOn marks endpoint.keepAlive as set.
const keepAliveOn = 1 << 8

// setKeepAlive applies a leg's keep-alive description to its RTP socket.
func (ep *endpoint) setKeepAlive(k KeepAlive) {
	var v uint32
	if k.Enabled && !ep.rtcp {
		v = keepAliveOn | uint32(k.PayloadType&0x7f)
	}
	ep.keepAlive.Store(v)
}

// isKeepAlive reports whether an accepted datagram is an H.460.19
// keep-alive: RTP (not RTCP) with the leg's keep-alive payload type, or
// RTP that carries no payload at all.
func (ep *endpoint) isKeepAlive(b []byte) bool {
	ka := ep.keepAlive.Load()
	if ka == 0 || len(b) < 12 || b[0]>>6 != 2 || isRTCP(b) {
		return false
	}
	if uint32(b[1]&0x7f) == ka&0x7f {
		return true
	}
	n := 12 + 4*int(b[0]&0x0f) // header and CSRCs
	if b[0]&0x10 != 0 {        // header extension
		if len(b) < n+4 {
			return false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	pad := 0
	if b[0]&0x20 != 0 {
		pad = int(b[len(b)-1])
	}
	return len(b)-pad <= n
}

// portRef counts the open sockets of a reserved port pair.
type portRef struct {
	pool *portPool
	port int
	refs atomic.Int32
}

func (p *portRef) done() {
	if p != nil && p.refs.Add(-1) == 0 && p.pool != nil {
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
	muxID   [2]uint32 // each leg's multiplexID, 0 when not multiplexed
	// session is the ID of the session the stream belongs to, for
	// Deps.OnChange; 0 on a standby copy (standby.go). Atomic: a copy
	// that is adopted gets its ID while its packets flow.
	session atomic.Uint64
}

type legSocks struct {
	port      int // even port reserved in the interface's pool, 0 if none
	iface     *iface
	rtp, rtcp *endpoint
}

// admit decides whether a datagram from m.Addr comes from this endpoint's
// peer, latching or re-latching per RFC 7362 section 4.1 with the rule of
// docs/config.md ("Latching"):
//
//   - a first packet latches only if its source IP is the signalled one or,
//     with LatchNAT, the IP the leg's signalling came from (any port);
//   - a latched peer is replaced by a packet from another source only when
//     that packet continues the peer's RTP stream (same SSRC, sequence
//     number a little ahead; for RTCP the same sender SSRC) or, after the
//     peer was silent for RelatchQuiet, when it comes from the signalled or
//     signalling IP; silence alone never lets anyone else in;
//   - with LatchStrict only the signalled IP is ever accepted;
//   - an asymmetric leg never latches: packets from the signalled or
//     signalling IP are accepted and replies go to the signalled address;
//   - a strict-source leg, once latched, accepts only its peer.
//
// It never allocates except when the peer changes.
func (ep *endpoint) admit(m *batchio.Message, now int64, t *tally) bool {
	p := ep.peer.Load()
	data := m.Data()
	if p == nil {
		return ep.drop(t)
	}
	if p.latched && p.addr == m.Addr {
		ep.remember(data, t)
		return true
	}
	known := p.known(m.Addr.Addr())
	switch {
	case p.asym:
		if known {
			return true
		}
		return ep.drop(t)
	case !known && ep.r.cfg.Latching == LatchStrict:
		return ep.drop(t)
	case !p.latched:
		if !known {
			return ep.drop(t)
		}
	case p.strict:
		return ep.drop(t)
	default:
		ep.r.fastRefresh(ep, now)
		quiet := ep.r.cfg.RelatchQuiet
		silent := known && quiet >= 0 && now-ep.lastRx.Load() >= int64(quiet) && isRTPOrRTCP(data)
		if !silent && !ep.continues(data) {
			return ep.drop(t)
		}
		t.relatched++
	}
	ep.peer.Store(&peer{addr: m.Addr, signalled: p.signalled, source: p.source, latched: true, strict: p.strict})
	ep.track.Store(0)
	ep.remember(data, t)
	ep.r.changed(SessionID(ep.st.session.Load()))
	return true
}

func (ep *endpoint) drop(t *tally) bool {
	ep.dropped.Add(1)
	t.strangers++
	return false
}

func isRTPOrRTCP(b []byte) bool { return len(b) >= 8 && b[0]>>6 == 2 }

func isRTCP(b []byte) bool { return b[1] >= 192 && b[1] <= 223 }

// remember records the SSRC and sequence number of a packet accepted from
// the peer. RTCP counts only on a socket that has carried no RTP. An RTP
// packet of the same SSRC that skips sequence numbers (at most maxDropout
// ahead) adds the skipped ones to t's lost count: a packet that arrives
// late after the gap was counted is not taken back, and a jump further
// ahead (a restarted sender) is no loss.
func (ep *endpoint) remember(b []byte, t *tally) {
	if !isRTPOrRTCP(b) {
		return
	}
	if isRTCP(b) {
		if ep.track.Load()&trackSeq == 0 {
			ep.track.Store(uint64(binary.BigEndian.Uint32(b[4:]))<<32 | trackValid)
		}
		return
	}
	if len(b) >= 12 {
		seq := binary.BigEndian.Uint16(b[2:])
		if tr := ep.track.Load(); tr&trackSeq != 0 && uint32(tr>>32) == binary.BigEndian.Uint32(b[8:]) {
			if d := seq - uint16(tr); d > 1 && d <= maxDropout {
				t.lost += uint64(d - 1)
			}
		}
		ep.track.Store(uint64(binary.BigEndian.Uint32(b[8:]))<<32 | trackValid | trackSeq | uint64(binary.BigEndian.Uint16(b[2:])))
	}
}

// continues reports whether a packet from a new source carries the
// peer's stream on: the same SSRC and, for RTP, a sequence number at most
// maxDropout ahead of the last one. SRTP and SRTCP keep these header fields
// in the clear (RFC 3711 section 3.1), so they are judged the same way.
func (ep *endpoint) continues(b []byte) bool {
	tr := ep.track.Load()
	if tr&trackValid == 0 || !isRTPOrRTCP(b) {
		return false
	}
	ssrc := uint32(tr >> 32)
	if isRTCP(b) {
		return binary.BigEndian.Uint32(b[4:]) == ssrc
	}
	if len(b) < 12 || binary.BigEndian.Uint32(b[8:]) != ssrc {
		return false
	}
	if tr&trackSeq == 0 {
		return true
	}
	d := binary.BigEndian.Uint16(b[2:]) - uint16(tr)
	return d != 0 && d <= maxDropout
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

// setSignalled applies a leg's signalled address, signalling source,
// asymmetric and strict-source flags. A latched peer stays latched when
// nothing changed for the leg, or when its IP is still one the new
// description allows.
func (ep *endpoint) setSignalled(addr netip.AddrPort, source netip.Addr, asym, strict bool) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !source.IsValid() && ep.st != nil {
		if ifc := ep.st.legs[ep.leg].iface; ifc != nil {
			source = ifc.latchFrom
		}
	}
	if ep.r.cfg.Latching != LatchNAT {
		source = netip.Addr{}
	}
	source = source.Unmap()
	old := ep.peer.Load()
	if old != nil && old.signalled == addr && old.source == source && old.asym == asym && old.strict == strict {
		return
	}
	np := &peer{addr: addr, signalled: addr, source: source, asym: asym, strict: strict}
	if old != nil && old.latched && !asym && (old.signalled == addr || np.known(old.addr.Addr())) {
		np.addr, np.latched = old.addr, true
	}
	ep.peer.Store(np)
}
