package media

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SessionState is what a standby node needs to hold a session warm and
// forward its media as soon as the addresses arrive (an HA failover): the
// streams as signalled, the address and port each leg's sockets are bound
// to, and each leg's latched peer with the SSRC and sequence number last
// seen from it. The eBPF fast path state is not carried: the standby's
// packet workers install it after they relayed a stream's first packets,
// as for any stream.
type SessionState struct {
	ID         SessionID
	Label      string
	Interfaces [2]string
	Created    time.Time
	Streams    []StreamState
}

// StreamState is one stream of a SessionState.
type StreamState struct {
	Config StreamConfig
	// Local is each leg's RTP socket address (RTCP: the next port, or the
	// same with rtcp-mux); zero for a stream without sockets.
	Local [2]netip.AddrPort
	// Peer and PeerRTCP are each leg's latched peer, zero when the leg has
	// not latched.
	Peer, PeerRTCP [2]netip.AddrPort
	// Track is each leg's last accepted SSRC and sequence number (the
	// evidence a re-latching packet must continue).
	Track [2]uint64
}

// changed tells Deps.OnChange about a session (0: a standby copy, which is
// not replicated back).
func (r *Relay) changed(id SessionID) {
	if f := r.deps.OnChange; f != nil && id != 0 {
		f(id)
	}
}

// SessionIDs returns the IDs of every live session allocated here (not
// the standby copies).
func (r *Relay) SessionIDs() []SessionID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]SessionID, 0, len(r.sessions))
	for id := range r.sessions {
		out = append(out, id)
	}
	return out
}

// Export returns a live session's replicable state, false when there is no
// such session.
func (r *Relay) Export(id SessionID) (SessionState, bool) {
	s, err := r.lookup(id)
	if err != nil {
		return SessionState{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return SessionState{}, false
	}
	out := SessionState{ID: s.id, Label: s.label, Interfaces: s.names, Created: s.created, Streams: make([]StreamState, len(s.streams))}
	for i, st := range s.streams {
		ss := &out.Streams[i]
		ss.Config = st.cfg
		ss.Config.Hold = st.hold.Load()
		for leg := range st.legs {
			ls := &st.legs[leg]
			if ls.rtp == nil {
				continue
			}
			ss.Local[leg] = ls.rtp.local
			if p := ls.rtp.peer.Load(); p != nil && p.latched {
				ss.Peer[leg] = p.addr
			}
			ss.Track[leg] = ls.rtp.track.Load()
			if ls.rtcp != nil {
				if p := ls.rtcp.peer.Load(); p != nil && p.latched {
					ss.PeerRTCP[leg] = p.addr
				}
			}
		}
	}
	return out, true
}

// sameSockets reports whether a standby stream already has the sockets st
// describes, so that an update only changes its peers.
func sameSockets(x *stream, ss *StreamState) bool {
	if !importable(ss) {
		return x.cfg.Disabled
	}
	if x.cfg.Disabled || x.cfg.RTCPMux != ss.Config.RTCPMux {
		return false
	}
	for leg := range x.legs {
		var local netip.AddrPort
		if ep := x.legs[leg].rtp; ep != nil {
			local = ep.local
		}
		if local != ss.Local[leg] {
			return false
		}
	}
	return true
}

// importable reports whether a stream is held warm: UDP streams with
// sockets. TCP media (BFCP over TCP) is lost with its connections.
func importable(ss *StreamState) bool {
	return !ss.Config.Disabled && ss.Config.Transport == UDP && ss.Local[0].IsValid() && ss.Local[1].IsValid()
}

// Import creates or updates the standby copy of a session exported by the
// HA peer (Export): its UDP streams' sockets are bound to the same
// addresses and ports with IP_FREEBIND, so that they receive and forward
// media as soon as the addresses (the VIP) arrive on this node, and their
// legs start latched to the peers the session had. Standby copies are not
// in Sessions, report no inactivity and replicate nothing; Forget removes
// one.
func (r *Relay) Import(in SessionState) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	old := r.standby[in.ID]
	r.mu.Unlock()
	if old != nil {
		old.mu.Lock()
		same := len(old.streams) == len(in.Streams)
		for i := 0; same && i < len(in.Streams); i++ {
			same = sameSockets(old.streams[i], &in.Streams[i])
		}
		if same {
			for i := range in.Streams {
				r.restore(old.streams[i], &in.Streams[i])
			}
			old.mu.Unlock()
			return nil
		}
		old.mu.Unlock()
		r.Forget(in.ID)
	}
	s := &session{id: in.ID, label: in.Label, names: in.Interfaces, created: in.Created, standby: true}
	for i, n := range in.Interfaces {
		ifc, err := r.iface(n)
		if err != nil {
			return fmt.Errorf("media: import %v leg %d: %w", in.ID, i, err)
		}
		s.ifaces[i] = ifc
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range in.Streams {
		ss := &in.Streams[i]
		c := ss.Config
		var fixed *[2]netip.AddrPort
		if importable(ss) {
			fixed = &ss.Local
		} else {
			c.Disabled = true
		}
		c.Multiplex = [2]bool{} // a multiplexID is the peer's; the copy uses the stream's own ports
		st, err := r.openStreamAt(s, i, c, fixed)
		if err != nil {
			for _, st := range s.streams {
				r.closeStream(st)
			}
			return fmt.Errorf("media: import %v stream %d: %w", in.ID, i, err)
		}
		r.restore(st, ss)
		s.streams = append(s.streams, st)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		for _, st := range s.streams {
			r.closeStream(st)
		}
		return ErrClosed
	}
	r.standby[in.ID] = s
	if s.label != "" {
		r.copies[s.label] = append(r.copies[s.label], s)
	}
	r.mu.Unlock()
	return nil
}

// restore applies a stream's signalled description and latched peers to
// its standby copy. The session's mu is held.
func (r *Relay) restore(st *stream, ss *StreamState) {
	if st.cfg.Disabled {
		return
	}
	c := &ss.Config
	st.hold.Store(c.Hold)
	for leg := range st.legs {
		ls := &st.legs[leg]
		for _, x := range []struct {
			ep     *endpoint
			signal netip.AddrPort
			peer   netip.AddrPort
		}{{ls.rtp, c.Remote[leg], ss.Peer[leg]}, {ls.rtcp, rtcpRemote(c, leg), ss.PeerRTCP[leg]}} {
			if x.ep == nil {
				continue
			}
			x.ep.setSignalled(x.signal, c.Source[leg], c.Asymmetric[leg], c.StrictSource[leg])
			if p := x.ep.peer.Load(); x.peer.IsValid() && p != nil && (!p.latched || p.addr != x.peer) {
				x.ep.peer.Store(&peer{addr: x.peer, signalled: p.signalled, source: p.source, latched: true, strict: p.strict})
				r.fastForget(x.ep)
			}
		}
		if ls.rtp != nil {
			ls.rtp.track.Store(ss.Track[leg])
		}
		// The peers were active when exported: a new source must wait
		// out RelatchQuiet from now, as on the node that had them.
		for _, ep := range []*endpoint{ls.rtp, ls.rtcp} {
			if ep != nil {
				ep.lastRx.CompareAndSwap(0, time.Now().UnixNano())
			}
		}
	}
}

// adopted reports whether a standby copy has carried media: its
// addresses are on this node now (a failover), so it is this node's to
// keep until its media stops. s.mu is held.
func (s *session) adopted() bool {
	for _, st := range s.streams {
		for leg := range st.legs {
			for _, ep := range []*endpoint{st.legs[leg].rtp, st.legs[leg].rtcp} {
				if ep != nil && ep.packets.Load() > 0 {
					return true
				}
			}
		}
	}
	return false
}

// Forget removes the standby copy of a session; an unknown ID is ignored.
// A copy that has carried media is kept: the peer that had the session
// lost its addresses to this node (one that restarts sends a snapshot
// without the sessions this node now relays), and the copy is adopted
// (adoptCopies).
func (r *Relay) Forget(id SessionID) {
	r.mu.Lock()
	s := r.standby[id]
	r.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	keep := s.adopted()
	s.mu.Unlock()
	if keep {
		return
	}
	r.dropStandby(id, s)
}

// dropStandby removes the standby copy s listed under id and releases it;
// false when id no longer names s (removed or adopted meanwhile).
func (r *Relay) dropStandby(id SessionID, s *session) bool {
	r.mu.Lock()
	ok := r.standby[id] == s
	if ok {
		delete(r.standby, id)
		r.pruneCopies(s.label)
	}
	r.mu.Unlock()
	if ok {
		r.releaseSession(s)
	}
	return ok
}

// adoptCopies makes each standby copy that carried media a session of
// this node under a new ID: its addresses are here now, so it is
// replicated to the peer as this node's (and moves back with the
// addresses when the peer takes them again). No call here owns it: it
// ends when its media stops (InactivityTimeout).
func (r *Relay) adoptCopies() {
	r.mu.Lock()
	list := make([]*session, 0, len(r.standby))
	for _, s := range r.standby {
		list = append(list, s)
	}
	// The index keeps adopted copies until they end (PeerSession).
	for label := range r.copies {
		r.pruneCopies(label)
	}
	r.mu.Unlock()
	for _, s := range list {
		s.mu.Lock()
		if s.released || !s.adopted() {
			s.mu.Unlock()
			continue
		}
		old := s.id
		r.mu.Lock()
		if r.closed || r.standby[old] != s {
			r.mu.Unlock()
			s.mu.Unlock()
			continue
		}
		delete(r.standby, old)
		s.id = SessionID(r.nextID.Add(1))
		s.standby, s.orphan = false, true
		r.sessions[s.id] = s
		r.mu.Unlock()
		for _, st := range s.streams {
			st.session.Store(uint64(s.id))
		}
		id, label := s.id, s.label
		s.mu.Unlock()
		r.m.sessions.Inc()
		r.log.Info("standby session adopted: its media arrives here", "session", id, "peer_session", old, "label", label)
		r.changed(id)
	}
}

// endAdopted releases an adopted session whose media stopped: no call on
// this node owns it to end it.
func (r *Relay) endAdopted(id SessionID, silent time.Duration) {
	r.mu.Lock()
	s := r.sessions[id]
	delete(r.sessions, id)
	if s != nil {
		r.pruneCopies(s.label)
	}
	r.mu.Unlock()
	if s == nil {
		return
	}
	st := r.releaseSession(s)
	r.changed(id)
	r.m.timeouts.Inc()
	r.log.Info("adopted session ended: media stopped", "session", id, "label", st.Label, "silent", silent.Round(time.Millisecond))
}

// LocalAddrs returns the addresses of this node's interfaces (a VIP among
// them once VRRP has moved it here), read from the system at each call;
// Relay.LocalAddrs shares one read a second among its callers.
func LocalAddrs() (map[netip.Addr]bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out[p.Addr().Unmap()] = true
		}
	}
	return out, nil
}

// addrsMaxAge is how long one read of the interface addresses serves
// (Relay.LocalAddrs): the stranded-copy check and the H.323 watcher of the
// peer's calls, each once a second, share it, and a VIP that arrives is
// seen within a second or two.
const addrsMaxAge = time.Second

// addrSnapshot is one read of the interface addresses.
type addrSnapshot struct {
	at    time.Time
	addrs map[netip.Addr]bool
	err   error
}

// addrCache shares a read of the interface addresses among its callers
// for addrsMaxAge: a caller finding the snapshot fresh takes it without a
// lock; the first to find it stale reads again, the others wait for that
// read. Its zero value reads with LocalAddrs on the system clock.
type addrCache struct {
	read func() (map[netip.Addr]bool, error) // nil: LocalAddrs
	now  func() time.Time                    // nil: time.Now
	cur  atomic.Pointer[addrSnapshot]
	mu   sync.Mutex // held by the caller reading again
}

func (c *addrCache) get() (map[netip.Addr]bool, error) {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	if s := c.cur.Load(); s != nil && now().Sub(s.at) < addrsMaxAge {
		return s.addrs, s.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.cur.Load(); s != nil && now().Sub(s.at) < addrsMaxAge {
		return s.addrs, s.err // read by another caller meanwhile
	}
	read := LocalAddrs
	if c.read != nil {
		read = c.read
	}
	addrs, err := read()
	c.cur.Store(&addrSnapshot{at: now(), addrs: addrs, err: err})
	return addrs, err
}

// LocalAddrs returns the addresses of this node's interfaces as read at
// most a second ago (addrsMaxAge): one read serves every caller of that
// second. The map is shared: callers must not modify it.
func (r *Relay) LocalAddrs() (map[netip.Addr]bool, error) { return r.addrs.get() }

// PeerSession finds what this node holds of the HA peer's sessions
// labelled label: a standby copy (standby), and a session of this node a
// copy became when its media arrived here (adoptCopies), with its
// statistics (live). Neither: there is no copy, or the adopted session
// ended. One lookup under the relay's lock answers both, so a copy adopted
// meanwhile is never missed; the sessions are found through an index by
// label, without listing the others.
func (r *Relay) PeerSession(label string) (stats SessionStats, live, standby bool) {
	var adopted *session
	r.mu.Lock()
	for _, s := range r.copies[label] {
		switch {
		case r.standby[s.id] == s:
			standby = true
		case r.sessions[s.id] == s:
			adopted = s
		}
	}
	r.mu.Unlock()
	if adopted == nil {
		return SessionStats{}, false, standby
	}
	adopted.mu.Lock()
	defer adopted.mu.Unlock()
	return adopted.stats(), true, standby
}

// pruneCopies drops from the label index the sessions that are neither
// standby copies nor live sessions any more. r.mu is held.
func (r *Relay) pruneCopies(label string) {
	kept := slices.DeleteFunc(r.copies[label], func(s *session) bool { return r.standby[s.id] != s && r.sessions[s.id] != s })
	if len(kept) == 0 {
		delete(r.copies, label)
	} else {
		r.copies[label] = kept
	}
}

// expireStranded releases the standby copies stranded by a failover: their
// addresses are on this node, yet no media reached them within limit of
// that (a call that was still ringing on the failed peer, whose call is
// lost with it). Without this they would keep their ports until the peer
// returns, which may be never. A copy whose addresses are elsewhere (the
// peer is alive) is left alone; one that carries media is adopted
// (adoptCopies).
func (r *Relay) expireStranded(now time.Time, limit time.Duration, local func() (map[netip.Addr]bool, error)) {
	r.mu.Lock()
	list := make([]*session, 0, len(r.standby))
	for _, s := range r.standby {
		list = append(list, s)
	}
	r.mu.Unlock()
	if len(list) == 0 {
		return
	}
	addrs, err := local()
	if err != nil {
		r.log.Warn("standby copies not checked: interface addresses unreadable", "err", err)
		return
	}
	for _, s := range list {
		s.mu.Lock()
		if s.released || s.adopted() {
			s.mu.Unlock()
			continue
		}
		if !s.localOn(addrs) {
			s.here = time.Time{}
			s.mu.Unlock()
			continue
		}
		if s.here.IsZero() {
			s.here = now
		}
		stale := now.Sub(s.here) >= limit
		id, label := s.id, s.label
		s.mu.Unlock()
		if !stale {
			continue
		}
		if r.dropStandby(id, s) {
			r.m.strandedCopies.Inc()
			r.log.Info("standby copy released: its addresses are here and no media reached it", "peer_session", id, "label", label, "after", limit)
		}
	}
}

// localOn reports whether every socket of a standby copy is bound to one
// of addrs. s.mu is held.
func (s *session) localOn(addrs map[netip.Addr]bool) bool {
	any := false
	for _, st := range s.streams {
		for leg := range st.legs {
			if ep := st.legs[leg].rtp; ep != nil {
				if !addrs[ep.local.Addr().Unmap()] {
					return false
				}
				any = true
			}
		}
	}
	return any
}

// Standby returns the statistics of every standby copy.
func (r *Relay) Standby() []SessionStats { return r.statsOf(true) }
