package h323proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/h323/h460"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/policy"
)

// natConn puts one media socket of a simulated endpoint behind a
// port-translating NAT with address-dependent filtering, as a home
// router does. The endpoint announces its private socket (priv) in H.245;
// what it sends leaves from the NAT's public socket (pub, another port on
// the same IP, the NAT binding), and only datagrams from an address it
// sent to come back, through the NAT's inside socket (gw) with the
// original source prepended. Datagrams reaching the private socket from
// anywhere else (the relay sending to the announced address) are what a
// private address on the Internet never receives: they are counted as
// strays and dropped.
type natConn struct {
	priv, pub, gw *net.UDPConn
	mu            sync.Mutex
	sentTo        map[netip.AddrPort]bool
	strays        *atomic.Int64
	done          chan struct{}
}

// nat wraps endpoint media sockets; strays counts over all of them.
type nat struct {
	t      *testing.T
	ip     netip.Addr
	strays atomic.Int64
}

func (n *nat) wrap(priv *net.UDPConn) h323test.MediaConn {
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.ip, 0)))
		if err != nil {
			n.t.Fatal(err)
		}
		return c
	}
	c := &natConn{priv: priv, pub: listen(), gw: listen(), sentTo: map[netip.AddrPort]bool{}, strays: &n.strays, done: make(chan struct{})}
	go c.inbound()
	return c
}

// inbound forwards what the binding receives to the private socket.
func (c *natConn) inbound() {
	defer close(c.done)
	buf := make([]byte, 2048)
	to := addrOf(c.priv.LocalAddr())
	for {
		n, from, err := c.pub.ReadFromUDPAddrPort(buf[6:])
		if err != nil {
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		c.mu.Lock()
		allowed := c.sentTo[from]
		c.mu.Unlock()
		if !allowed {
			continue
		}
		a := from.Addr().As4()
		copy(buf, a[:])
		binary.BigEndian.PutUint16(buf[4:], from.Port())
		c.gw.WriteToUDPAddrPort(buf[:6+n], to)
	}
}

func (c *natConn) WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error) {
	c.mu.Lock()
	c.sentTo[to] = true
	c.mu.Unlock()
	return c.pub.WriteToUDPAddrPort(b, to)
}

func (c *natConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	buf := make([]byte, 2048)
	gw := addrOf(c.gw.LocalAddr())
	for {
		n, from, err := c.priv.ReadFromUDPAddrPort(buf)
		if err != nil {
			return 0, netip.AddrPort{}, err
		}
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != gw || n < 6 {
			c.strays.Add(1)
			continue
		}
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[:4])), binary.BigEndian.Uint16(buf[4:]))
		return copy(b, buf[6:n]), src, nil
	}
}

func (c *natConn) LocalAddr() net.Addr { return c.priv.LocalAddr() }

func (c *natConn) Close() error {
	err := errors.Join(c.priv.Close(), c.pub.Close(), c.gw.Close())
	<-c.done
	return err
}

// offers19 reports whether a call-signalling message body names H.460.19.
func offers19(b *h225.H323UUPDUH323MessageBody) bool {
	var fs *h225.FeatureSet
	switch {
	case b.Setup != nil:
		fs = &h225.FeatureSet{NeededFeatures: b.Setup.NeededFeatures, DesiredFeatures: b.Setup.DesiredFeatures, SupportedFeatures: b.Setup.SupportedFeatures}
	case b.CallProceeding != nil:
		fs = b.CallProceeding.FeatureSet
	case b.Alerting != nil:
		fs = b.Alerting.FeatureSet
	case b.Connect != nil:
		fs = b.Connect.FeatureSet
	}
	return ras.FeatureIn(fs, ras.H46019) != nil
}

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestH46019MediaTraversal: an outside endpoint behind a NAT registers
// with H.460.18 and H.460.19 through Portico, calls an inside endpoint
// and is called from inside. It announces its private media ports; the
// relay sees another port (the NAT binding) and cannot reach the
// announced one. The inside endpoint talks first, before the outside one
// sent any media: its RTP reaches the outside endpoint only because the
// keep-alives the endpoint sent to the keepAliveChannel Portico gave it
// opened the NAT and latched the relay's leg. Then RTP flows back. The
// keep-alives are counted by the relay and never reach the inside. With
// media traversal off, Portico sends no traversal parameters, the
// endpoint sends no keep-alives, and the inside's RTP goes to the private
// address, never arriving. tshark dissects every message Portico sent
// outside: traversal parameters naming the relay's outside address, no
// inside address, nothing malformed.
func TestH46019MediaTraversal(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		traversal, mux, callsOnly bool
	}{
		{"keep-alives open the NAT", true, false, false},
		{"multiplexed media", true, true, false},
		// h323plus offers H.460.19 in its calls, not in its RRQ
		{"offered in calls only", true, true, true},
		{"traversal parameters stripped", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			gk := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: gatekeeperIP, TimeToLive: 60, Routed: true})
			defer gk.Close()
			p := startE2EWith(t, gk, policy.Guest{}, func(c *Config) { c.MediaTraversal = tc.traversal })
			box := &nat{t: t, ip: outsideEPIP}
			inside := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(), IP: insideEPIP})
			defer inside.Close()
			room := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "room-19", Gatekeeper: p.extRAS, IP: outsideEPIP,
				H46018: true, H46019: true, H46019Multiplex: tc.mux, H46019CallsOnly: tc.callsOnly, AdvertiseCallSignal: epDeclaredSig, WrapMedia: box.wrap})
			defer room.Close()
			for _, ep := range []*h323test.Endpoint{inside, room} {
				if err := ep.Register(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if want := tc.traversal && !tc.callsOnly; room.H46019() != want {
				t.Fatalf("H.460.19 confirmed: %v, want %v", room.H46019(), want)
			}
			var outsideMsgs []h323test.Message
			ended := 0
			for _, dir := range []struct {
				name    string
				outside bool // the outside endpoint calls
				opts    h323test.CallOptions
			}{
				{"outside calls inside", true, h323test.CallOptions{H245: h323test.Tunnelled}},
				{"inside calls outside", false, h323test.CallOptions{H245: h323test.Separate}},
				{"outside calls inside with fastStart", true, h323test.CallOptions{FastStart: true}},
				{"inside calls outside with fastStart", false, h323test.CallOptions{FastStart: true}},
			} {
				t.Run(dir.name, func(t *testing.T) {
					caller, callee, dest := room, inside, "2001"
					if !dir.outside {
						caller, callee, dest = inside, room, "room-19"
					}
					c, out, in := connect(t, ctx, caller, callee, dest, dir.opts, dir.outside)
					for _, x := range []*h323test.Call{out, in} {
						if err := x.WaitMedia(ctx); err != nil {
							t.Fatal(err)
						}
					}
					const n = 10
					if tc.traversal {
						waitUntil(t, ctx, "keep-alives latch every outside leg", func() bool {
							ss := p.relay.Sessions()
							if len(ss) != 1 || len(ss[0].Streams) != len(h323test.AllKinds) {
								return false
							}
							for _, st := range ss[0].Streams {
								if l := st.Legs[0]; l.KeepAlives == 0 || !l.Latched {
									return false
								}
							}
							return true
						})
						if err := in.SendRTP(n); err != nil {
							t.Fatal(err)
						}
						if err := out.WaitReceived(ctx, n); err != nil {
							t.Fatalf("inside to outside: %v\nrelay %+v\noutside %+v", err, p.relay.Sessions(), out.Media())
						}
						if err := out.SendRTP(n); err != nil {
							t.Fatal(err)
						}
						if err := in.WaitReceived(ctx, n); err != nil {
							t.Fatalf("outside to inside: %v", err)
						}
						for _, st := range out.Media() {
							if st.KeepAlives == 0 || st.KeepAliveTo.Addr() != outsideIP || st.From.Addr() != outsideIP || st.Remote.Addr() != outsideIP {
								t.Errorf("%v outside: keep-alives %d to %v, media from %v to %v; want the relay's outside address",
									st.Kind, st.KeepAlives, st.KeepAliveTo, st.From, st.Remote)
							}
							if !tc.mux {
								if st.MultiplexSent != 0 || st.MultiplexReceived != 0 || st.KeepAliveTo == p.mux {
									t.Errorf("%v: multiplexed without being offered: %+v", st.Kind, st)
								}
								continue
							}
							if tc.callsOnly && !dir.outside && dir.opts.FastStart {
								// Portico's fastStart proposals went out before the
								// endpoint's Connect said it transmits multiplexed:
								// it sends to the session's own port, and receives
								// from there prefixed, as it asked.
								if st.MultiplexSent != 0 || st.KeepAliveTo == p.mux || st.From != st.KeepAliveTo || st.MultiplexReceived != n {
									t.Errorf("%v: sent %d multiplexed, keep-alives to %v, received %d prefixed from %v; want none, the session's port, %d from it",
										st.Kind, st.MultiplexSent, st.KeepAliveTo, st.MultiplexReceived, st.From, n)
								}
								continue
							}
							// Everything went through the multiplexed port, prefixed both ways.
							if st.MultiplexTo != p.mux || st.KeepAliveTo != p.mux || st.From != p.mux || st.MultiplexSent < n+1 || st.MultiplexReceived != n {
								t.Errorf("%v multiplexed: sent %d to %v (keep-alives to %v), received %d prefixed from %v; want all through %v",
									st.Kind, st.MultiplexSent, st.MultiplexTo, st.KeepAliveTo, st.MultiplexReceived, st.From, p.mux)
							}
						}
						for _, st := range in.Media() {
							if st.Received != n {
								t.Errorf("%v: the inside received %d packets, want the %d sent: keep-alives crossed", st.Kind, st.Received, n)
							}
						}
						if box.strays.Load() != 0 {
							t.Errorf("%d datagrams sent to the private address", box.strays.Load())
						}
					} else {
						before := box.strays.Load()
						if err := in.SendRTP(n); err != nil {
							t.Fatal(err)
						}
						want := before + int64(n*len(h323test.AllKinds))
						waitUntil(t, ctx, "the relay sends to the announced private address", func() bool { return box.strays.Load() >= want })
						for _, st := range out.Media() {
							if st.Received != 0 || st.KeepAlives != 0 {
								t.Errorf("%v: received %d through the NAT and sent %d keep-alives; want none", st.Kind, st.Received, st.KeepAlives)
							}
						}
					}
					for _, m := range in.Messages() {
						if m.UUIE != nil && offers19(&m.UUIE.H323UuPdu.H323MessageBody) {
							t.Errorf("the inside got H.460.19 in a %s", m.Name)
						}
					}
					outsideMsgs = append(outsideMsgs, hangUp(c, out, in)...)
					ended++
					p.calls.wait(t, ctx, ended)
				})
			}
			outsideMsgs = append(outsideMsgs, room.RAS()...)
			wants := []string{"registrationConfirm", "setup", "connect", "openLogicalChannel", "openLogicalChannelAck"}
			if tc.traversal {
				wants = append(wants, "mediaNATFWTraversal", "mediaTraversalServer", "supportTransmitMultiplexedMedia", "keepAliveChannel",
					"keepAliveInterval: 19", "keepAlivePayloadType: 127", "network: "+outsideIP.String())
			}
			if tc.mux {
				wants = append(wants, "multiplexedMediaChannel", "multiplexedMediaControlChannel", "multiplexID",
					"tsapIdentifier: "+strconv.Itoa(int(p.mux.Port())))
			}
			checkOutsideFor(t, outsideMsgs, wants)
		})
	}
}

// TestH46019KeepAliveConfigured: the keepAlivePayloadType and
// keepAliveInterval of the H.460.19 traversal parameters Portico sends an
// outside endpoint in OpenLogicalChannel and OpenLogicalChannelAck are
// h323.media_keep_alive_payload_type and media_keep_alive_interval (127
// and 19s by default), as the endpoint decodes them and tshark dissects
// them.
func TestH46019KeepAliveConfigured(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pt       int
		interval time.Duration
		wantPT   uint8
		wantSecs uint32
	}{
		{"defaults", 0, 0, 127, 19},
		{"configured", 100, 5 * time.Second, 100, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			gk := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: gatekeeperIP, TimeToLive: 60, Routed: true})
			defer gk.Close()
			p := startE2EWith(t, gk, policy.Guest{}, func(c *Config) {
				c.MediaTraversal, c.MediaKeepAlivePayloadType, c.MediaKeepAliveInterval = true, tc.pt, tc.interval
			})
			inside := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(), IP: insideEPIP})
			defer inside.Close()
			room := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "room-19", Gatekeeper: p.extRAS, IP: outsideEPIP,
				H46018: true, H46019: true, AdvertiseCallSignal: epDeclaredSig})
			defer room.Close()
			for _, ep := range []*h323test.Endpoint{inside, room} {
				if err := ep.Register(ctx); err != nil {
					t.Fatal(err)
				}
			}
			var outsideMsgs []h323test.Message
			for i, outside := range []bool{true, false} {
				caller, callee, dest := room, inside, "2001"
				if !outside {
					caller, callee, dest = inside, room, "room-19"
				}
				c, out, in := connect(t, ctx, caller, callee, dest, h323test.CallOptions{H245: h323test.Separate}, outside)
				for _, x := range []*h323test.Call{out, in} {
					if err := x.WaitMedia(ctx); err != nil {
						t.Fatal(err)
					}
				}
				outsideMsgs = append(outsideMsgs, hangUp(c, out, in)...)
				p.calls.wait(t, ctx, i+1)
			}
			seen := map[string]int{}
			for _, m := range outsideMsgs {
				if m.H245 == nil || m.H245.Request == nil && m.H245.Response == nil {
					continue
				}
				var tp h460.TraversalParameters
				var found bool
				var err error
				switch {
				case m.H245.Request != nil && m.H245.Request.OpenLogicalChannel != nil:
					tp, found, err = h460.OLCTraversal(m.H245.Request.OpenLogicalChannel)
				case m.H245.Response != nil && m.H245.Response.OpenLogicalChannelAck != nil:
					tp, found, err = h460.AckTraversal(m.H245.Response.OpenLogicalChannelAck)
				default:
					continue
				}
				if !found || err != nil {
					t.Errorf("%s without traversal parameters (%v)", m.Name, err)
					continue
				}
				seen[m.Name]++
				if !tp.HasKeepAlivePayloadType || tp.KeepAlivePayloadType != tc.wantPT || !tp.HasKeepAliveInterval || tp.KeepAliveInterval != tc.wantSecs {
					t.Errorf("%s: keepAlivePayloadType %d (%v), keepAliveInterval %d (%v); want %d, %d",
						m.Name, tp.KeepAlivePayloadType, tp.HasKeepAlivePayloadType, tp.KeepAliveInterval, tp.HasKeepAliveInterval, tc.wantPT, tc.wantSecs)
				}
			}
			if len(seen) != 2 {
				t.Errorf("traversal parameters seen in %v, want OLC and OLCAck", seen)
			}
			checkOutsideFor(t, outsideMsgs, []string{"openLogicalChannel", "openLogicalChannelAck", "keepAliveChannel",
				fmt.Sprintf("keepAliveInterval: %d", tc.wantSecs), fmt.Sprintf("keepAlivePayloadType: %d", tc.wantPT)})
		})
	}
}
