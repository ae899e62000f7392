package turn

import (
	"encoding/binary"
	"net"
	"net/netip"

	pturn "github.com/pion/turn/v5"
)

// A UDP client ends its allocation with a Refresh whose LIFETIME is 0
// (RFC 8656 §7.3). The listener sockets handle that request themselves
// when it is plainly valid: it carries the nonce this node issued to the
// client, the credentials the allocation was made with and a correct
// MESSAGE-INTEGRITY, and no attribute but USERNAME, REALM, NONCE,
// LIFETIME, MESSAGE-INTEGRITY, FINGERPRINT and comprehension-optional
// ones. They close the relay socket, which makes the engine delete the
// allocation (its reader of the socket sees it closed), and the success
// response is sent once the engine has deleted it (Server.events,
// OnAllocationDeleted), so that a client that allocates again on the same
// 5-tuple at once is not refused with 437. Every other Refresh, and any
// request that fails a check here, goes to the engine, which answers it as
// before (400, 401, 438, ...).

// farewell is the response to a Refresh that released an allocation, to
// be sent once the engine has deleted it.
type farewell struct {
	msg []byte
	out net.PacketConn
	to  netip.AddrPort
}

// release handles b, a request from a UDP client with an allocation on
// this listener, when it is a Refresh with LIFETIME 0 that passes every
// check (see above). It reports whether b was handled.
func (c *listenPacketConn) release(b []byte, from netip.AddrPort) bool {
	rc, ok := c.allocs.shard(from.Port()).load()[from]
	if !ok {
		return false
	}
	if _, standby := c.standby.load()[from]; standby {
		return false // a standby copy has no engine allocation to delete
	}
	var req stunRequest
	if !parseRequest(b, &req) || req.method != methodRefresh || req.others || req.integrity == 0 ||
		len(req.lifetime) != 4 || binary.BigEndian.Uint32(req.lifetime) != 0 ||
		req.username == nil || req.realm == nil || req.nonce == nil {
		return false
	}
	s := c.s
	if !s.nonces.valid(req.nonce, from.Addr()) {
		return false
	}
	user, key, ok := s.credentials(&pturn.RequestAttributes{Username: string(req.username), Realm: string(req.realm)}, false)
	if !ok || rc.h == nil || user != rc.h.user || !integrityOK(b, req.integrity, key) {
		return false
	}
	msg := appendHeader(make([]byte, 0, stunHeaderLen+8+24), methodRefresh, classSuccessResponse, &req.tid)
	msg = appendAttr(msg, attrLifetime, []byte{0, 0, 0, 0})
	msg = appendIntegrity(msg, key)
	if !rc.bye.CompareAndSwap(nil, &farewell{msg: msg, out: c.PacketConn, to: from}) {
		return true // a retransmission: the response is on its way
	}
	_ = rc.Close()
	return true
}

// sayFarewell sends the response to the Refresh that released c's
// allocation, if one did.
func (c *relayPacketConn) sayFarewell() {
	if f := c.bye.Swap(nil); f != nil {
		_, _ = f.out.WriteTo(f.msg, net.UDPAddrFromAddrPort(f.to))
	}
}
