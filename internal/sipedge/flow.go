package sipedge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash"
	"net/netip"
	"strings"
	"sync"
)

// Flow is the NAT flow an outside endpoint reached Portico on: the
// transport and the source address seen (for TCP, TLS, WS and WSS the
// connection from that address).
type Flow struct {
	Transport string
	Source    netip.AddrPort
}

var flowTransports = []string{"udp", "tcp", "tls", "ws", "wss"}

// flowCodec makes and checks RFC 5626 section 5.2 flow tokens: the flow,
// authenticated by an HMAC, encoded so that it fits a SIP URI user part.
// Tokens are stateless: the flow travels inside the Path header and comes
// back in the Route of calls to the endpoint.
type flowCodec struct {
	key []byte
	// macs keeps keyed HMACs for reuse: keying one hashes the key twice
	// and allocates, once per REGISTER and per call otherwise.
	macs sync.Pool
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

const flowMACLen = 10

func (fc *flowCodec) encode(f Flow) string {
	t := 0
	for i, n := range flowTransports {
		if n == f.Transport {
			t = i
		}
	}
	a := f.Source.Addr().Unmap()
	buf := make([]byte, flowMACLen, flowMACLen+1+16+2)
	buf = append(buf, byte(t))
	buf = append(buf, a.AsSlice()...)
	buf = binary.BigEndian.AppendUint16(buf, f.Source.Port())
	copy(buf, fc.mac(buf[flowMACLen:]))
	return strings.ToLower(b32.EncodeToString(buf))
}

func (fc *flowCodec) mac(b []byte) []byte {
	h, _ := fc.macs.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, fc.key)
	}
	h.Reset()
	h.Write(b)
	var sum [sha256.Size]byte
	out := append([]byte(nil), h.Sum(sum[:0])[:flowMACLen]...)
	fc.macs.Put(h)
	return out
}

func (fc *flowCodec) decode(tok string) (Flow, error) {
	if len(tok) > 64 {
		return Flow{}, ErrBadFlowToken
	}
	b, err := b32.DecodeString(strings.ToUpper(tok))
	if err != nil || len(b) < flowMACLen+1+4+2 || !strings.EqualFold(b32.EncodeToString(b), tok) {
		// The last check refuses non-canonical encodings (unused low bits).
		return Flow{}, ErrBadFlowToken
	}
	if !hmac.Equal(b[:flowMACLen], fc.mac(b[flowMACLen:])) {
		return Flow{}, ErrBadFlowToken
	}
	p := b[flowMACLen:]
	if int(p[0]) >= len(flowTransports) {
		return Flow{}, ErrBadFlowToken
	}
	ip := p[1 : len(p)-2]
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return Flow{}, fmt.Errorf("%w: address", ErrBadFlowToken)
	}
	return Flow{Transport: flowTransports[p[0]], Source: netip.AddrPortFrom(a, binary.BigEndian.Uint16(p[len(p)-2:]))}, nil
}
