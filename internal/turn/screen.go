package turn

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"
)

// STUN attribute types read by the sockets.
const attrNonce = 0x0015

// findAttr returns the value of the first attribute of type t in the STUN
// message b (header included), without trusting any length.
func findAttr(b []byte, t uint16) ([]byte, bool) {
	if len(b) < stunHeaderLen || binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return nil, false
	}
	body := b[stunHeaderLen:]
	if n := int(binary.BigEndian.Uint16(b[2:4])); n < len(body) {
		body = body[:n]
	}
	for i := 0; i < maxAttrsInspected && len(body) >= 4; i++ {
		at := binary.BigEndian.Uint16(body[0:2])
		l := int(binary.BigEndian.Uint16(body[2:4]))
		if l > len(body)-4 {
			return nil, false
		}
		if at == t {
			return body[4 : 4+l], true
		}
		padded := (l + 3) &^ 3
		if 4+padded > len(body) {
			return nil, false
		}
		body = body[4+padded:]
	}
	return nil, false
}

// isErrorResponse reports whether b is a STUN error response (class 0b11).
func isErrorResponse(b []byte) bool {
	return len(b) >= stunHeaderLen && b[0]&0xC0 == 0 && b[0]&0x01 != 0 && b[1]&0x10 != 0
}

// isRequest reports whether b is a STUN request (class 0b00).
func isRequest(b []byte) bool {
	return len(b) >= stunHeaderLen && b[0]&0xC0 == 0 && b[0]&0x01 == 0 && b[1]&0x10 == 0
}

// bindNonce fills the client's address into the nonce of an error response
// the engine is sending to client (see nonceKeeper).
func (s *Server) bindNonce(b []byte, client net.Addr) {
	if !isErrorResponse(b) {
		return
	}
	if v, ok := findAttr(b, attrNonce); ok {
		s.nonces.bind(v, clientIP(client))
	}
}

func clientIP(a net.Addr) netip.Addr {
	ap, _ := addrPort(a)
	return ap.Addr().Unmap()
}

// replier sends a message the sockets answered themselves to the client
// that sent the request; b is not kept.
type replier interface {
	reply(b []byte, client net.Addr)
}

// replyFunc adapts a function to replier.
type replyFunc func(b []byte)

func (f replyFunc) reply(b []byte, _ net.Addr) { f(b) }

// screen looks at a message a client sent before the engine reads it. It
// spoils a nonce issued to another address (the engine then answers 438),
// and answers 403 itself to a CreatePermission, ChannelBind or Connect
// towards one of the node's own transport addresses, or a ChannelBind
// towards a peer the policy denies (the engine would answer 401, which
// sends clients back to their credentials). It may change b in place;
// reply sends a message to the client. It reports whether the engine is to
// read b.
func (s *Server) screen(b []byte, client net.Addr, r replier) bool {
	if !isRequest(b) || binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return true
	}
	if v, ok := findAttr(b, attrNonce); ok && !s.nonces.check(v, clientIP(client)) {
		s.m.authForeignNonce.Inc()
		s.log.Debug("turn: nonce issued to another address", "client", addrString(client))
		return true
	}
	var mt stun.MessageType
	mt.ReadValue(binary.BigEndian.Uint16(b[0:2]))
	method := mt.Method
	switch method {
	case stun.MethodCreatePermission, stun.MethodChannelBind, stun.MethodConnect:
	case stun.MethodAllocate:
		return !s.challenge(b, client, r)
	default:
		return true
	}
	m := &stun.Message{Raw: b}
	if err := m.Decode(); err != nil {
		return true // the engine answers malformed requests
	}
	own, policy := s.own.Load(), s.live.Load().policy
	var denied netip.AddrPort
	for _, a := range m.Attributes {
		if a.Type != stun.AttrXORPeerAddress {
			continue
		}
		ap, ok := xorPeerAddress(a.Value, m.TransactionID)
		if !ok {
			continue
		}
		if own.has(ap) || method == stun.MethodChannelBind && !policy.permits(ap.Addr()) {
			denied = ap
			break
		}
	}
	if !denied.IsValid() {
		return true
	}
	key, ok := s.verify(m, client)
	if !ok {
		return true // not authenticated: the engine answers 401 or 438
	}
	s.m.peersDenied.Inc()
	s.log.Debug("turn: peer denied", "client", addrString(client), "peer", denied.String(), "method", method.String())
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID),
		stun.NewType(method, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: stun.CodeForbidden},
		stun.MessageIntegrity(key))
	if err != nil {
		return true
	}
	r.reply(resp.Raw, client)
	return false
}

// challenge answers an Allocate request without MESSAGE-INTEGRITY with 401,
// the realm and a nonce bound to the client, as the engine would (RFC 8656
// §7.2, RFC 8489 §9.2.4), sparing it a request that only asks for them;
// it reports whether it answered. Malformed requests and authenticated
// ones go to the engine. It does not allocate.
func (s *Server) challenge(b []byte, client net.Addr, r replier) bool {
	var req stunRequest
	if !parseRequest(b, &req) || req.integrity != 0 {
		return false
	}
	bp := respBufs.Get().(*[]byte)
	resp := appendHeader((*bp)[:0], methodAllocate, classErrorResponse, &req.tid)
	resp = appendErrorCode(resp, 401, "Unauthorized")
	resp = binary.BigEndian.AppendUint16(resp, attrNonce)
	resp = binary.BigEndian.AppendUint16(resp, nonceLen)
	resp = s.nonces.appendNonce(resp, clientIP(client))
	resp = appendAttr(resp, attrRealm, s.realm)
	r.reply(finish(resp), client)
	*bp = resp
	respBufs.Put(bp)
	return true
}

// verify authenticates a request as the engine does (nonce, credentials,
// MESSAGE-INTEGRITY), without counting failures: the engine, which gets
// every request that fails here, counts them. It returns the key.
func (s *Server) verify(m *stun.Message, client net.Addr) ([]byte, bool) {
	var (
		nonce stun.Nonce
		user  stun.Username
		realm stun.Realm
	)
	if !m.Contains(stun.AttrMessageIntegrity) || nonce.GetFrom(m) != nil || user.GetFrom(m) != nil || realm.GetFrom(m) != nil {
		return nil, false
	}
	if s.nonces.Validate(nonce.String()) != nil {
		return nil, false
	}
	_, key, ok := s.credentials(&pturn.RequestAttributes{Username: user.String(), Realm: realm.String(), SrcAddr: client}, false)
	if !ok || stun.MessageIntegrity(key).Check(m) != nil {
		return nil, false
	}
	return key, true
}

// xorPeerAddress decodes an XOR-PEER-ADDRESS value (RFC 8656 §18.3).
func xorPeerAddress(v []byte, tid [stun.TransactionIDSize]byte) (netip.AddrPort, bool) {
	if len(v) < 8 {
		return netip.AddrPort{}, false
	}
	port := binary.BigEndian.Uint16(v[2:4]) ^ uint16(stunMagicCookie>>16)
	var key [16]byte
	binary.BigEndian.PutUint32(key[:4], stunMagicCookie)
	copy(key[4:], tid[:])
	switch {
	case v[1] == 0x01 && len(v) == 8:
		var a [4]byte
		for i := range a {
			a[i] = v[4+i] ^ key[i]
		}
		return netip.AddrPortFrom(netip.AddrFrom4(a), port), true
	case v[1] == 0x02 && len(v) == 20:
		var a [16]byte
		for i := range a {
			a[i] = v[4+i] ^ key[i]
		}
		return netip.AddrPortFrom(netip.AddrFrom16(a), port), true
	}
	return netip.AddrPort{}, false
}
