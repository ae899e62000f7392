package turn

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/portico-edge/portico/internal/testpeer"
)

// rawClient speaks STUN/TURN message by message, so that tests can send
// what a library client would refuse to and read the exact error codes.
type rawClient struct {
	t            testing.TB
	conn         net.Conn
	stream       bool
	nonce, realm string
	last         []byte // the last request sent, as on the wire
}

type setter func(*stun.Message) error

func (f setter) AddTo(m *stun.Message) error { return f(m) }

func rawAttr(t stun.AttrType, v []byte) stun.Setter {
	return setter(func(m *stun.Message) error { m.Add(t, v); return nil })
}

func peerAttr(ap netip.AddrPort) stun.Setter {
	return setter(func(m *stun.Message) error {
		return stun.XORMappedAddress{IP: ap.Addr().AsSlice(), Port: int(ap.Port())}.AddToAs(m, stun.AttrXORPeerAddress)
	})
}

func transportAttr(proto byte) stun.Setter {
	return rawAttr(stun.AttrRequestedTransport, []byte{proto, 0, 0, 0})
}

func channelAttr(n uint16) stun.Setter {
	return rawAttr(stun.AttrChannelNumber, []byte{byte(n >> 8), byte(n), 0, 0})
}

// dialRaw connects from local ("" for any loopback port) to server.
func dialRaw(t testing.TB, network, local, server string) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		ap := netip.MustParseAddrPort(local)
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(ap)
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(ap)
		}
	}
	c, err := d.Dial(network, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, stream: network == "tcp"}
}

func (c *rawClient) send(b []byte) {
	c.t.Helper()
	c.last = append(c.last[:0], b...)
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message from the server.
func (c *rawClient) read() *stun.Message {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b []byte
	if c.stream {
		hdr := make([]byte, stunHeaderLen)
		if _, err := io.ReadFull(c.conn, hdr); err != nil {
			c.t.Fatal(err)
		}
		b = append(hdr, make([]byte, binary.BigEndian.Uint16(hdr[2:4]))...)
		if _, err := io.ReadFull(c.conn, b[stunHeaderLen:]); err != nil {
			c.t.Fatal(err)
		}
	} else {
		b = make([]byte, 1600)
		n, err := c.conn.Read(b)
		if err != nil {
			c.t.Fatal(err)
		}
		b = b[:n]
	}
	m := &stun.Message{Raw: b}
	if err := m.Decode(); err != nil {
		c.t.Fatalf("decode %x: %v", b, err)
	}
	return m
}

// do sends an authenticated request (fetching a nonce first if needed)
// and returns the response.
func (c *rawClient) do(method stun.Method, attrs ...stun.Setter) *stun.Message {
	c.t.Helper()
	for range 3 {
		setters := []stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}
		setters = append(setters, attrs...)
		if c.nonce != "" {
			setters = append(setters, stun.NewUsername(testUser), stun.NewRealm(c.realm), stun.NewNonce(c.nonce),
				stun.NewLongTermIntegrity(testUser, c.realm, testPass))
		}
		req := stun.MustBuild(setters...)
		c.send(req.Raw)
		resp := c.read()
		for resp.TransactionID != req.TransactionID {
			resp = c.read()
		}
		if code := errorCode(resp); code == 401 && c.nonce == "" || code == 438 {
			var n stun.Nonce
			var r stun.Realm
			if n.GetFrom(resp) != nil || r.GetFrom(resp) != nil {
				c.t.Fatalf("%d without nonce and realm", code)
			}
			c.nonce, c.realm = n.String(), r.String()
			continue
		}
		return resp
	}
	c.t.Fatalf("%s: no answer but 401/438", method)
	return nil
}

// errorCode is the response's ERROR-CODE, 0 for a success response.
func errorCode(m *stun.Message) int {
	var ec stun.ErrorCodeAttribute
	if m.Type.Class != stun.ClassErrorResponse || ec.GetFrom(m) != nil {
		return 0
	}
	return int(ec.Code)
}

// allocate makes an allocation relaying proto (17 UDP, 6 TCP) and returns
// the relayed address.
func (c *rawClient) allocate(proto byte) netip.AddrPort {
	c.t.Helper()
	resp := c.do(stun.MethodAllocate, transportAttr(proto))
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil {
		c.t.Fatalf("allocate: error %d", errorCode(resp))
	}
	a, _ := netip.AddrFromSlice(relayed.IP)
	return netip.AddrPortFrom(a.Unmap(), uint16(relayed.Port))
}

// TestOwnAddressesRefused asks, over a UDP and an RFC 6062 TCP allocation,
// for permissions, channels and connections to every address Portico
// itself serves on loopback, with loopback peers allowed: the TURN
// listeners, another service's listener (the management port), a listener
// on every address, the client's own relayed address and the relay range.
// Each is refused with 403; a peer beside them is not.
func TestOwnAddressesRefused(t *testing.T) {
	mgmt, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mgmt.Close()
	mgmtAP := mgmt.LocalAddr().(*net.UDPAddr).AddrPort()
	anyPort := uint16(testpeer.FreePort(t))
	cfg := testConfig()
	cfg.Own.Listeners = []string{mgmtAP.String(), "0.0.0.0:" + strconv.Itoa(int(anyPort))}
	cfg.Peers.Allow = append(cfg.Peers.Allow, "127.0.0.1/32") // allow_peers cannot reopen them either
	s := runServer(t, cfg)
	lo := netip.MustParseAddr("127.0.0.1")
	peer := echoPeer(t)
	peerAP := peer.LocalAddr().(*net.UDPAddr).AddrPort()

	for _, tc := range []struct {
		name    string
		network string
		proto   byte
	}{{"udp allocation", "udp", 17}, {"tcp allocation", "tcp", 6}} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, tc.network, "", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
			relayed := c.allocate(tc.proto)
			targets := map[string]netip.AddrPort{
				"turn listener":         netip.AddrPortFrom(lo, uint16(s.port)),
				"turn tls listener":     netip.AddrPortFrom(lo, uint16(s.tlsPort)),
				"management listener":   mgmtAP,
				"listener on any addr":  netip.AddrPortFrom(netip.MustParseAddr("127.0.0.7"), anyPort),
				"own relayed address":   relayed,
				"relay range":           netip.AddrPortFrom(lo, uint16(cfg.Relay.PortMax)),
				"relay range as mapped": netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), uint16(cfg.Relay.PortMin)),
			}
			for name, ap := range targets {
				if ap.Addr().Is4In6() && tc.network == "tcp" {
					continue
				}
				if got := errorCode(c.do(stun.MethodCreatePermission, peerAttr(ap))); got != 403 {
					t.Errorf("CreatePermission to %s %s: code %d, want 403", name, ap, got)
				}
				if tc.proto == 17 {
					if got := errorCode(c.do(stun.MethodChannelBind, channelAttr(0x4001), peerAttr(ap))); got != 403 {
						t.Errorf("ChannelBind to %s %s: code %d, want 403", name, ap, got)
					}
				} else if got := errorCode(c.do(stun.MethodConnect, peerAttr(ap))); got != 403 {
					t.Errorf("Connect to %s %s: code %d, want 403", name, ap, got)
				}
			}
			if got := errorCode(c.do(stun.MethodCreatePermission, peerAttr(peerAP))); got != 0 {
				t.Errorf("CreatePermission to the peer %s: code %d, want success", peerAP, got)
			}
		})
	}

	// A permission for 127.0.0.1 (the peer's address) does not carry Send
	// indications to the management port on the same address.
	t.Run("send indication", func(t *testing.T) {
		c := dialRaw(t, "udp", "", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
		c.allocate(17)
		if got := errorCode(c.do(stun.MethodCreatePermission, peerAttr(peerAP))); got != 0 {
			t.Fatalf("CreatePermission to the peer: code %d", got)
		}
		sendTo := func(ap netip.AddrPort, data string) {
			c.send(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
				peerAttr(ap), rawAttr(stun.AttrData, []byte(data))).Raw)
		}
		sendTo(mgmtAP, "to-management")
		sendTo(peerAP, "to-peer")
		// The echo of the second datagram comes back as a Data indication;
		// the first, sent before it on the same relay socket, would be in
		// the management socket's queue by then.
		if m := c.read(); m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
			t.Fatalf("got %s, want a Data indication", m.Type)
		}
		_ = mgmt.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 100)
		if n, _, err := mgmt.ReadFrom(buf); err == nil {
			t.Fatalf("the management socket received %q through the relay", buf[:n])
		}
	})
}
