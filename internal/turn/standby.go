package turn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"
	"golang.org/x/sys/unix"
)

// AllocationState is what a peer node needs to keep serving a UDP client's
// UDP allocation (RFC 8656 §2.2): its 5-tuple, the credentials that check
// its refreshes, its relayed address, expiry, permissions and channels.
type AllocationState struct {
	Client   netip.AddrPort `json:"client"`
	Server   netip.AddrPort `json:"server"`
	User     string         `json:"user"`
	Username string         `json:"username"`
	Realm    string         `json:"realm"`
	// Key is the long-term key (RFC 8489 §9.2.2) of Username in Realm.
	Key         []byte                    `json:"key"`
	Relay       netip.AddrPort            `json:"relay"`
	Expires     time.Time                 `json:"expires"`
	Permissions []netip.Addr              `json:"permissions,omitempty"`
	Channels    map[uint16]netip.AddrPort `json:"channels,omitempty"`
}

// RecordKey is the allocation's record key: its client transport and 5-tuple.
func (st AllocationState) RecordKey() string {
	return "udp|" + st.Client.String() + "|" + st.Server.String()
}

// standbyAlloc is a peer node's allocation kept ready on this node: its
// relay socket is bound (IP_FREEBIND) to the relayed address and the UDP
// listeners know its client, so that once the address moves here its
// ChannelData, Send and Data indications are relayed by the fast path and
// its Refresh requests are answered (standbyRefresh), with no engine
// allocation behind it.
type standbyAlloc struct {
	s     *Server
	key   string
	rc    *relayPacketConn
	lpcs  []*listenPacketConn
	mu    sync.Mutex
	st    AllocationState
	timer *time.Timer
}

// AllocationKeys lists the UDP allocations of UDP clients the engine holds.
func (s *Server) AllocationKeys() []string {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	out := make([]string, 0, len(s.reg.entries))
	for k, e := range s.reg.entries {
		if strings.HasPrefix(k, "udp|") && e.info.RelayTransport == "udp" && e.username != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// ExportAllocation returns the state of the allocation with key.
func (s *Server) ExportAllocation(key string) (AllocationState, bool) {
	var (
		st AllocationState
		ok bool
	)
	s.reg.with(key, func(e *allocEntry) {
		if e.info.RelayTransport != "udp" || e.username == "" || !strings.HasPrefix(key, "udp|") {
			return
		}
		c, err1 := netip.ParseAddrPort(e.info.Client)
		sv, err2 := netip.ParseAddrPort(e.info.Server)
		r, err3 := netip.ParseAddrPort(e.info.Relay)
		if err1 != nil || err2 != nil || err3 != nil {
			return
		}
		st = AllocationState{Client: unmapAP(c), Server: unmapAP(sv), User: e.info.User, Username: e.username,
			Realm: s.cfg.Realm, Relay: r, Expires: e.info.Expires}
		for p := range e.perms {
			if a, err := netip.ParseAddr(p); err == nil {
				st.Permissions = append(st.Permissions, a.Unmap())
			}
		}
		sort.Slice(st.Permissions, func(i, j int) bool { return st.Permissions[i].Less(st.Permissions[j]) })
		for n, p := range e.chans {
			if a, err := netip.ParseAddrPort(p); err == nil {
				if st.Channels == nil {
					st.Channels = map[uint16]netip.AddrPort{}
				}
				st.Channels[n] = unmapAP(a)
			}
		}
		ok = true
	})
	if !ok {
		return st, false
	}
	_, key2, ok := s.credentials(&pturn.RequestAttributes{Username: st.Username, Realm: st.Realm}, false)
	if !ok {
		return st, false
	}
	st.Key = key2
	return st, true
}

// ImportAllocation keeps st, a peer node's allocation, as a standby copy
// (see standbyAlloc), or updates the copy already kept. The UDP listener
// st.Server (or the wildcard listener on its port) must be served.
func (s *Server) ImportAllocation(st AllocationState) error {
	if !st.Client.IsValid() || !st.Server.IsValid() || !st.Relay.IsValid() || len(st.Key) == 0 {
		return fmt.Errorf("turn: import allocation: %w", errBadState)
	}
	key := st.RecordKey()
	s.standbyMu.Lock()
	defer s.standbyMu.Unlock()
	if s.standby == nil {
		s.standby = map[string]*standbyAlloc{}
	}
	sb := s.standby[key]
	if sb != nil && sb.st.Relay != st.Relay {
		sb.stop()
		delete(s.standby, key)
		sb = nil
	}
	if sb == nil {
		lpcs := s.standbyListeners(st.Server)
		if len(lpcs) == 0 {
			return fmt.Errorf("turn: import allocation %s: no UDP listener serves %s", key, st.Server)
		}
		rc, err := s.alloc.bindStandby(st.User, st.Relay)
		if err != nil {
			return fmt.Errorf("turn: import allocation %s: %w", key, err)
		}
		sb = &standbyAlloc{s: s, key: key, rc: rc, lpcs: lpcs}
		rc.setClient(st.Client, lpcs[0].udp)
		for _, lpc := range lpcs {
			lpc.addAlloc(st.Client, rc)
			lpc.standby.store(st.Client, sb)
		}
		s.standbyWG.Go(func() {
			buf := make([]byte, maxRelayDatagram)
			for {
				// What the fast path does not relay (peers without a
				// permission) is dropped, as the engine would.
				if _, _, err := rc.ReadFrom(buf); err != nil {
					return
				}
			}
		})
		s.standby[key] = sb
	}
	sb.set(st)
	return nil
}

// ForgetAllocation drops the standby copy of key.
func (s *Server) ForgetAllocation(key string) {
	s.standbyMu.Lock()
	sb := s.standby[key]
	delete(s.standby, key)
	s.standbyMu.Unlock()
	if sb != nil {
		sb.stop()
	}
}

// StandbyAllocations lists the standby copies' states.
func (s *Server) StandbyAllocations() []AllocationState {
	s.standbyMu.Lock()
	defer s.standbyMu.Unlock()
	out := make([]AllocationState, 0, len(s.standby))
	for _, sb := range s.standby {
		sb.mu.Lock()
		out = append(out, sb.st)
		sb.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RecordKey() < out[j].RecordKey() })
	return out
}

// stopStandby drops every standby copy and waits for their readers.
func (s *Server) stopStandby() {
	s.standbyMu.Lock()
	all := s.standby
	s.standby = nil
	s.standbyMu.Unlock()
	for _, sb := range all {
		sb.stop()
	}
	s.standbyWG.Wait()
}

// standbyListeners returns the UDP listeners with a fast path on server,
// or on the wildcard address of its port.
func (s *Server) standbyListeners(server netip.AddrPort) []*listenPacketConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range []string{server.String(),
		netip.AddrPortFrom(netip.IPv4Unspecified(), server.Port()).String(),
		netip.AddrPortFrom(netip.IPv6Unspecified(), server.Port()).String()} {
		if l := s.locals[a]; len(l) > 0 && l[0].udp != nil {
			return l
		}
	}
	return nil
}

// set replaces the copy's permissions, channels and expiry with st's.
func (sb *standbyAlloc) set(st AllocationState) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	old := sb.st
	sb.st = st
	for n := range old.Channels {
		if p, ok := st.Channels[n]; !ok || p != old.Channels[n] {
			for _, lpc := range sb.lpcs {
				lpc.removeChannel(old.Client, n)
			}
			sb.rc.removePeer(old.Channels[n], n)
		}
	}
	sb.rc.perms.update(func(m map[netip.Addr]struct{}) {
		clear(m)
		for _, p := range st.Permissions {
			m[p.Unmap()] = struct{}{}
		}
	})
	for n, p := range st.Channels {
		for _, lpc := range sb.lpcs {
			lpc.addChannel(st.Client, n, sb.rc, p)
		}
		sb.rc.addPeer(p, n, st.Client, sb.lpcs[0].udp)
	}
	sb.expireAt(st.Expires)
}

// expireAt drops the copy at t, as the engine drops an allocation that was
// not refreshed. Called with mu held.
func (sb *standbyAlloc) expireAt(t time.Time) {
	if sb.timer != nil {
		sb.timer.Stop()
	}
	sb.timer = time.AfterFunc(max(t.Sub(sb.s.now()), 0), func() { sb.s.ForgetAllocation(sb.key) })
}

// stop takes the copy out of the fast path and closes its relay socket.
func (sb *standbyAlloc) stop() {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.timer != nil {
		sb.timer.Stop()
	}
	for _, lpc := range sb.lpcs {
		lpc.removeAlloc(sb.st.Client, sb.rc)
		lpc.standby.deleteIf(sb.st.Client, func(x *standbyAlloc) bool { return x == sb })
		for n := range sb.st.Channels {
			lpc.removeChannel(sb.st.Client, n)
		}
	}
	_ = sb.rc.Close()
}

// request answers a Refresh (RFC 8656 §7), CreatePermission (§9) or
// ChannelBind (§11) request from the copy's client, reporting whether it
// did: a request whose MESSAGE-INTEGRITY does not check with the copy's
// key, or that the copy cannot grant, goes to the engine, which refuses
// it. The nonce is checked as for the node's own allocations: one this
// node did not issue to the client's address (the failed node's, or a
// captured request replayed after its hour) goes to the engine too, which
// answers 438 Stale Nonce with a nonce of this node, so that the client's
// retry is answered here.
func (sb *standbyAlloc) request(b []byte, from netip.AddrPort, out net.PacketConn) bool {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil || m.Type.Class != stun.ClassRequest {
		return false
	}
	forget := false
	defer func() {
		if forget { // after mu is released: stop takes it
			sb.s.ForgetAllocation(sb.key)
		}
	}()
	sb.mu.Lock()
	defer sb.mu.Unlock()
	key := sb.st.Key
	if stun.MessageIntegrity(key).Check(m) != nil || !sb.s.ownNonce(m, from.Addr()) {
		return false
	}
	setters := []stun.Setter{stun.NewTransactionIDSetter(m.TransactionID), stun.NewType(m.Type.Method, stun.ClassSuccessResponse)}
	ending := false
	switch m.Type.Method {
	case stun.MethodRefresh:
		lt := sb.s.cfg.Lifetime.Default
		if v, ok := findAttr(b, attrLifetime); ok && len(v) == 4 {
			lt = min(time.Duration(binary.BigEndian.Uint32(v))*time.Second, maxLifetime)
			if lt != 0 {
				lt = max(lt, sb.s.cfg.Lifetime.Default)
			}
		}
		setters = append(setters, stun.RawAttribute{Type: stun.AttrLifetime, Value: binary.BigEndian.AppendUint32(nil, uint32(lt/time.Second))})
		if ending = lt == 0; !ending {
			sb.st.Expires = sb.s.now().Add(lt)
			sb.expireAt(sb.st.Expires)
		}
	case stun.MethodCreatePermission:
		var peers []netip.Addr
		for _, a := range m.Attributes {
			if a.Type != stun.AttrXORPeerAddress {
				continue
			}
			ap, ok := xorPeerAddress(a.Value, m.TransactionID)
			if !ok || !sb.permits(ap) {
				return false
			}
			peers = append(peers, ap.Addr().Unmap())
		}
		if len(peers) == 0 {
			return false
		}
		for _, p := range peers {
			if !slices.Contains(sb.st.Permissions, p) {
				sb.st.Permissions = append(sb.st.Permissions, p)
			}
			sb.rc.addPerm(p)
		}
	case stun.MethodChannelBind:
		v, ok := findAttr(b, uint16(stun.AttrChannelNumber))
		pv, ok2 := findAttr(b, uint16(stun.AttrXORPeerAddress))
		if !ok || !ok2 || len(v) != 4 {
			return false
		}
		number := binary.BigEndian.Uint16(v)
		peer, ok := xorPeerAddress(pv, m.TransactionID)
		if !ok || number < 0x4000 || number > 0x4FFF || !sb.permits(peer) {
			return false
		}
		peer = unmapAP(peer)
		if old, ok := sb.st.Channels[number]; ok && old != peer {
			return false // bound to another peer: the engine answers 400
		}
		for n, p := range sb.st.Channels {
			if p == peer && n != number {
				return false
			}
		}
		if sb.st.Channels == nil {
			sb.st.Channels = map[uint16]netip.AddrPort{}
		}
		sb.st.Channels[number] = peer
		if !slices.Contains(sb.st.Permissions, peer.Addr()) {
			sb.st.Permissions = append(sb.st.Permissions, peer.Addr())
		}
		sb.rc.addPerm(peer.Addr())
		for _, lpc := range sb.lpcs {
			lpc.addChannel(sb.st.Client, number, sb.rc, peer)
		}
		sb.rc.addPeer(peer, number, sb.st.Client, sb.lpcs[0].udp)
	default:
		return false
	}
	resp, err := stun.Build(append(setters, stun.MessageIntegrity(key), stun.Fingerprint)...)
	if err != nil {
		return false
	}
	forget = ending
	_, _ = out.WriteTo(resp.Raw, net.UDPAddrFromAddrPort(from))
	return true
}

// ownNonce reports whether m carries a nonce this node issued to ip that
// has not expired.
func (s *Server) ownNonce(m *stun.Message, ip netip.Addr) bool {
	v, err := m.Get(stun.AttrNonce)
	if err != nil || s.nonces.Validate(string(v)) != nil {
		return false
	}
	return s.nonces.check(append([]byte(nil), v...), ip.Unmap())
}

// permits applies the peer address policy and the node's own addresses to
// a peer the client asks for, as the engine's requests are screened.
func (sb *standbyAlloc) permits(peer netip.AddrPort) bool {
	if sb.s.own.Load().has(peer) || !sb.s.live.Load().policy.permits(peer.Addr().Unmap()) {
		sb.s.m.peersDenied.Inc()
		return false
	}
	return true
}

// maxLifetime caps the lifetime a client may ask for (RFC 8656 §7.2: one
// hour is the recommended maximum).
const maxLifetime = time.Hour

var errBadState = errors.New("allocation state lacks its client, server, relayed address or key")

// bindStandby opens a relay socket on relay's port for a standby copy:
// bound to relay.bind when that is the wildcard address, else to relay's
// address with IP_FREEBIND, which the node need not have yet.
func (a *allocator) bindStandby(user string, relay netip.AddrPort) (*relayPacketConn, error) {
	var rc *relayPacketConn
	h, err := a.reserve(user, false, int(relay.Port()), func(port int) (interface{ Close() error }, error) {
		ip := a.bindIP
		if !ip.IsUnspecified() {
			ip = relay.Addr()
		}
		lc := net.ListenConfig{Control: freeBind}
		network := "udp4"
		if !ip.Is4() {
			network = "udp6"
		}
		pc, err := lc.ListenPacket(context.Background(), network, netip.AddrPortFrom(ip, uint16(port)).String())
		if err != nil {
			return nil, err
		}
		c := pc.(*net.UDPConn)
		setBuffers(c, a.bufKB)
		rc = newRelayPacketConn(c)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	rc.h = h
	h.closer = rc
	return rc, nil
}

func freeBind(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
