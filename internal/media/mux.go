package media

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
)

// ITU-T H.460.19 multiplexed media: an endpoint behind NAT
// sends the RTP (and RTCP) of all its streams to one port of the traversal
// server, each datagram prefixed with a 4-octet multiplexID that selects
// the stream, and may ask to receive its media so prefixed. An interface
// with a MultiplexPort has a multiplexed RTP socket on it and an RTCP one
// on the next port. A stream leg marked Multiplex gets an ID from the
// relay's table; datagrams arriving on a multiplexed socket are looked up
// by their prefix (no lock: the table is read through atomic pointers),
// stripped of it and then handled as if they had arrived on the leg's own
// socket: the same latching rule, keep-alives, statistics and forwarding.
// Media toward such a leg leaves from the multiplexed socket (the NAT
// binding the endpoint opened is toward it), prefixed with the ID the
// endpoint asked for when it asked for one.

// ErrMultiplexFull is returned when every multiplexID slot is taken.
var ErrMultiplexFull = errors.New("media: multiplexID table full")

// muxChunks bounds the multiplexID table: 65,536 multiplexed legs at once.
const muxChunks = 64

// muxEntry is what a multiplexID selects: one leg's RTP and RTCP sockets.
// hi is the ID's random upper half.
type muxEntry struct {
	hi        uint32
	rtp, rtcp *endpoint
}

// muxTable maps multiplexIDs to legs. An ID is a random 16-bit value over
// the slot number, so IDs are not guessable from one another; lookups
// compare the whole ID.
type muxTable struct{ tab *slots[muxEntry] }

func newMuxTable() *muxTable { return &muxTable{tab: newSlots[muxEntry](muxChunks)} }

// add gives rtp and rtcp (either may be nil) a new multiplexID.
func (t *muxTable) add(rtp, rtcp *endpoint) (uint32, error) {
	var r [2]byte
	rand.Read(r[:])
	e := &muxEntry{hi: uint32(binary.BigEndian.Uint16(r[:])), rtp: rtp, rtcp: rtcp}
	if e.hi == 0 {
		e.hi = 1 // an ID is never 0: zero means "not multiplexed"
	}
	slot, ok := t.tab.put(e)
	if !ok {
		return 0, ErrMultiplexFull
	}
	return e.hi<<16 | slot, nil
}

// remove frees id's slot.
func (t *muxTable) remove(id uint32) {
	if e := t.lookup(id); e != nil {
		t.tab.release(id&0xffff, e)
	}
}

// lookup returns the leg of id, or nil.
func (t *muxTable) lookup(id uint32) *muxEntry {
	if e := t.tab.get(id & 0xffff); e != nil && e.hi == id>>16 {
		return e
	}
	return nil
}

// muxSend is how datagrams for a leg's peer leave when the leg takes part
// in multiplexing: from sock (an interface's multiplexed socket; nil: the
// leg's own), prefixed with id when id is not zero.
type muxSend struct {
	sock *endpoint
	id   uint32
}

// demux resolves a datagram received on multiplexed socket mux: it
// returns the leg endpoint its prefix selects, with the prefix removed
// from msg, or nil (unknown ID, too short) after counting it.
func (r *Relay) demux(mux *endpoint, buf []byte, n *int, t *tally) *endpoint {
	if *n < 4+8 {
		mux.dropped.Add(1)
		t.muxUnknown++
		return nil
	}
	e := r.mux.lookup(binary.BigEndian.Uint32(buf))
	var ep *endpoint
	if e != nil {
		ep = e.rtp
		if mux.rtcp {
			ep = e.rtcp
		}
	}
	if ep == nil || ep.dead.Load() {
		mux.dropped.Add(1)
		t.muxUnknown++
		return nil
	}
	copy(buf, buf[4:*n])
	*n -= 4
	return ep
}

// prefix puts id in front of the n-octet datagram in buf; false when it
// does not fit.
func prefix(buf []byte, n *int, id uint32) bool {
	if *n+4 > len(buf) {
		return false
	}
	copy(buf[4:*n+4], buf[:*n])
	binary.BigEndian.PutUint32(buf, id)
	*n += 4
	return true
}

// openMux opens the multiplexed sockets of every interface that has a
// MultiplexPort and registers them with e. r.mu is held.
func (r *Relay) openMux(e *engine) error {
	for _, ifc := range r.ifaces {
		if ifc.muxPort == 0 {
			continue
		}
		for i := range ifc.mux {
			local := netip.AddrPortFrom(ifc.addr, uint16(ifc.muxPort+i))
			sock, err := openUDP(local, r.cfg.SocketBuffer)
			if err != nil {
				return err
			}
			ep := &endpoint{r: r, st: &stream{worker: i}, rtcp: i == 1, sys: sock, local: local, muxSock: true}
			if err := e.add(ep); err != nil {
				closeSock(sock)
				return err
			}
			ifc.mux[i] = ep
		}
	}
	return nil
}

// closeMux unregisters the multiplexed sockets. r.mu may be held.
func (r *Relay) closeMux(e *engine) {
	for _, ifc := range r.ifaces {
		for i, ep := range ifc.mux {
			if ep != nil {
				e.remove(ep)
				ifc.mux[i] = nil
			}
		}
	}
}

// setMux applies the multiplexing of leg of st as c describes it. The
// session's mu is held.
func (r *Relay) setMux(st *stream, leg int, c *StreamConfig) error {
	ls := &st.legs[leg]
	if ls.rtp == nil {
		return nil
	}
	want := c.Multiplex[leg] && ls.iface.mux[0] != nil
	switch {
	case want && st.muxID[leg] == 0:
		id, err := r.mux.add(ls.rtp, ls.rtcp)
		if err != nil {
			return err
		}
		st.muxID[leg] = id
	case !want && st.muxID[leg] != 0:
		r.mux.remove(st.muxID[leg])
		st.muxID[leg] = 0
	}
	for i, ep := range []*endpoint{ls.rtp, ls.rtcp} {
		if ep == nil {
			continue
		}
		var ms *muxSend
		if want || c.MultiplexSend[leg] != 0 {
			// From the multiplexed port only when the endpoint sends there:
			// its NAT binding is toward the port it sends to.
			ms = &muxSend{id: c.MultiplexSend[leg]}
			if want {
				ms.sock = ls.iface.mux[i]
			}
		}
		ep.muxOut.Store(ms)
	}
	return nil
}
