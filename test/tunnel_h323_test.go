package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/testpeer"
)

// insideH323Env names the environment variable that makes the test binary,
// started in the inside namespace, run the inside H.323 parties
// (TestTunnelH323Inside) for TestTunnelH323.
const insideH323Env = "PORTICO_TEST_TUNNEL_H323_INSIDE"

// TestTunnelH323: the DMZ node's H.323 edge reaches the inside gatekeeper
// (RAS and routed call signalling) only through the tunnel, and the
// gatekeeper reaches the DMZ node's internal RAS and call-signalling
// addresses only through reverse services offered on the inside node,
// delivered from the gatekeeper's IP address. The relay's internal port
// range is mirrored on the inside node as for SIP. No H.323 product is
// packaged: the project's gatekeeper and endpoint stand-ins (package
// h323test) play the inside gatekeeper and endpoint 2001, run by this test
// binary in the inside namespace, whose inbound traffic is dropped, and
// the outside endpoint room-7 (H.460.18). room-7 registers through the
// DMZ node and calls 2001 with fastStart; 2001 calls room-7 back with
// tunnelled H.245; then each calls the other again with a separate H.245
// connection: toward 2001's h245Address the DMZ node connects through the
// tunnel's dial service (the inside node connects, inside its allow
// list), and 2001 reaches the DMZ node's H.245 listener in the internal
// h245_ports range, which the inside node mirrors. RTP crosses the relay
// and the tunnel both ways in all four calls.
func TestTunnelH323(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon test; skipped under -short")
	}
	testpeer.Require(t, "nft", "curl")
	ns := newNetnsPeer(t)

	// The inside parties: the gatekeeper on 127.0.0.4, endpoint 2001 on
	// 127.0.0.5, in the inside namespace.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, "ip", "netns", "exec", ns.name, os.Args[0], "-test.run=^TestTunnelH323Inside$", "-test.v")
	child.Env = append(os.Environ(), insideH323Env+"=1")
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var childErr syncBuffer
	child.Stderr = &childErr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	var childOut syncBuffer
	childDone := make(chan error, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(io.TeeReader(stdout, &childOut))
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "inside: "); ok {
				lines <- l
			}
		}
		childDone <- child.Wait()
	}()
	next := func(want string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if ok && strings.HasPrefix(l, want) {
				t.Logf("%s inside: %s", time.Now().Format("15:04:05.0"), l)
				return l
			}
			t.Fatalf("inside parties: %q, want %s\n%s%s", l, want, childOut.String(), childErr.String())
		case <-ctx.Done():
			t.Fatalf("inside parties: no %s\n%s%s", want, childOut.String(), childErr.String())
		}
		return ""
	}
	var gkRAS, gkSig string
	if _, err := fmt.Sscanf(next("gatekeeper"), "gatekeeper %s %s", &gkRAS, &gkSig); err != nil {
		t.Fatal(err)
	}

	// The DMZ node: outside 127.0.0.2, inside 127.0.0.3; its gatekeeper is
	// at the inside gatekeeper's addresses, which the tunnel offers here.
	mgmt := freeAddr(t)
	ports, media, intRAS := testpeer.FreePorts(t, 2), testpeer.FreePorts(t, 40), testpeer.FreePort(t)
	h245Ext, h245Int := testpeer.FreePorts(t, 10), testpeer.FreePorts(t, 10)
	cfg := strings.Replace(baseConfig(mgmt), "external: {address: 127.0.0.1}", "external: {address: 127.0.0.2}", 1)
	cfg = strings.Replace(cfg, "internal: {address: 127.0.0.1, networks: [10.0.0.0/8]}", "internal: {address: 127.0.0.3, networks: [10.0.0.0/8]}", 1)
	cfg += fmt.Sprintf(`media:
  enabled: true
  internal_latch_from: 127.0.0.4
  external: {port_min: %d, port_max: %d}
  internal: {port_min: %d, port_max: %d}
h323:
  enabled: true
  ras_port: %d
  internal_ras_port: %d
  signal_port: %d
  gatekeeper: %s
  gatekeeper_signal: %s
  h245_ports: {external: {min: %d, max: %d}, internal: {min: %d, max: %d}}
  h245_tunnel_service: h245
`, media, media+19, media+20, media+39, ports, intRAS, ports+1, gkRAS, gkSig, h245Ext, h245Ext+9, h245Int, h245Int+9)
	rasIn, sigIn := fmt.Sprintf("127.0.0.3:%d", intRAS), fmt.Sprintf("127.0.0.3:%d", ports+1)
	mirror := fmt.Sprintf("127.0.0.3:%d-%d", media+20, media+39)
	h245Mirror := fmt.Sprintf("127.0.0.3:%d-%d", h245Int, h245Int+9)
	pair := startTunnelPair(t, ns, cfg,
		fmt.Sprintf("  - {name: ras, proto: udp, listen: %q}\n  - {name: q931, proto: tcp, listen: %q}\n"+
			"  - {name: ras-in, proto: udp, target: %q, source: 127.0.0.4}\n  - {name: q931-in, proto: tcp, target: %q, source: 127.0.0.4}\n"+
			"  - {name: media, proto: udp, target: %q, source: 127.0.0.4}\n"+
			"  - {name: h245, proto: tcp}\n  - {name: h245-in, proto: tcp, target: %q}\n", gkRAS, gkSig, rasIn, sigIn, mirror, h245Mirror),
		fmt.Sprintf("  - {name: ras, proto: udp, target: %q}\n  - {name: q931, proto: tcp, target: %q}\n"+
			"  - {name: ras-in, proto: udp, listen: %q}\n  - {name: q931-in, proto: tcp, listen: %q}\n"+
			"  - {name: media, proto: udp, listen: %q}\n"+
			"  - {name: h245, proto: tcp, networks: [127.0.0.5/32]}\n  - {name: h245-in, proto: tcp, listen: %q}\n", gkRAS, gkSig, rasIn, sigIn, mirror, h245Mirror))
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(pair.dmz.dir, "*", "log", "portico.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b)
			}
			t.Logf("inside parties:\n%s%s", childOut.String(), childErr.String())
		}
	})
	next("registered")

	// room-7 outside, behind NAT with H.460.18, registers through the DMZ
	// node's RAS, the tunnel and the inside gatekeeper.
	extRAS := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(ports))
	room := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "room-7", Gatekeeper: extRAS, IP: netip.MustParseAddr("127.0.0.6"),
		H46018: true, AdvertiseCallSignal: netip.MustParseAddrPort("192.0.2.10:1720")})
	t.Cleanup(room.Close)
	for i := 0; ; i++ { // the tunnel's first flow may still be on its way
		if err = room.Register(ctx); err == nil {
			break
		}
		if i == 20 {
			t.Fatalf("outside registration through the tunnel: %v", err)
		}
	}

	// Outside → inside, fastStart.
	a, err := room.Call(ctx, "2001", h323test.CallOptions{FastStart: true})
	if err != nil {
		t.Fatalf("call 2001: %v", err)
	}
	exchange(t, ctx, a, false)
	next("answered")
	a.Hangup()
	next("ended")

	// Inside → outside, tunnelled H.245: the gatekeeper routes 2001's
	// Setup to room-7's registered address, the DMZ node's internal
	// call-signalling address, which the inside node offers.
	b, err := room.Incoming(ctx)
	if err != nil {
		t.Fatalf("call from 2001: %v", err)
	}
	exchange(t, ctx, b, false)
	next("called")
	select {
	case <-b.Done():
	case <-ctx.Done():
		t.Fatal("the inside caller's hang-up did not reach room-7")
	}

	// Outside → inside, separate H.245: 2001's Connect names its own
	// H.245 listener; room-7 connects to the DMZ node's external range,
	// and the DMZ node reaches 2001 through the dial service.
	c, err := room.Call(ctx, "2001", h323test.CallOptions{H245: h323test.Separate})
	if err != nil {
		t.Fatalf("call 2001 with separate H.245: %v", err)
	}
	exchange(t, ctx, c, false)
	next("answered separate")
	c.Hangup()
	next("ended separate")

	// Inside → outside, separate H.245: room-7 (behind NAT) is asked to
	// connect to the DMZ node's external range (Facility startH245), and
	// 2001 connects to the internal range, mirrored by the inside node.
	d, err := room.Incoming(ctx)
	if err != nil {
		t.Fatalf("call from 2001 with separate H.245: %v", err)
	}
	exchange(t, ctx, d, false)
	next("called separate")
	select {
	case <-d.Done():
	case <-ctx.Done():
		t.Fatal("the inside caller's hang-up did not reach room-7")
	}
	if err := <-childDone; err != nil {
		t.Fatalf("inside parties: %v\n%s%s", err, childOut.String(), childErr.String())
	}

	hist := tunnelCalls(t, pair.api, 4)
	for _, h := range hist {
		if len(h.Streams) == 0 || h.Streams[0].PacketsIn == 0 || h.Streams[0].PacketsOut == 0 {
			t.Errorf("call history %+v: media not relayed both ways through the tunnel", hist)
		}
	}
	if _, flows := tunnelServices(t, pair.api); flows["ras"] == 0 || flows["q931"] == 0 || flows["q931-in"] == 0 || flows["media"] < 2 {
		t.Errorf("tunnel flows %v: RAS, call signalling or media did not cross", flows)
	} else if flows["h245"] != 1 || flows["h245-in"] != 1 {
		t.Errorf("tunnel flows %v: want one separate H.245 connection each way (h245 dialled, h245-in mirrored)", flows)
	}
}

// TestTunnelH323Inside is the inside half of TestTunnelH323, run by it in
// the inside namespace: the gatekeeper and endpoint 2001 stand-ins. 2001
// answers a call from outside, then calls room-7; both exchange RTP. It
// reports each step on a line of its own.
func TestTunnelH323Inside(t *testing.T) {
	if os.Getenv(insideH323Env) == "" {
		t.Skip("the inside half of TestTunnelH323, which runs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	gk := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: netip.MustParseAddr("127.0.0.4"), TimeToLive: 60, Routed: true})
	fmt.Printf("inside: gatekeeper %s %s\n", gk.RASAddr(), gk.CallSignalAddr())
	ep := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(), IP: netip.MustParseAddr("127.0.0.5")})
	if err := ep.Register(ctx); err != nil {
		t.Fatal(err)
	}
	fmt.Println("inside: registered")

	b, err := ep.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, ctx, b, true)
	fmt.Println("inside: answered")
	select {
	case <-b.Done():
	case <-ctx.Done():
		t.Fatal("room-7's hang-up did not reach 2001")
	}
	fmt.Println("inside: ended")

	a, err := ep.Call(ctx, "room-7", h323test.CallOptions{H245: h323test.Tunnelled})
	if err != nil {
		t.Fatalf("call room-7: %v", err)
	}
	exchange(t, ctx, a, true)
	fmt.Println("inside: called")
	a.Hangup()

	c, err := ep.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, ctx, c, true)
	fmt.Println("inside: answered separate")
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("room-7's hang-up did not reach 2001 (separate H.245)")
	}
	fmt.Println("inside: ended separate")

	d, err := ep.Call(ctx, "room-7", h323test.CallOptions{H245: h323test.Separate})
	if err != nil {
		t.Fatalf("call room-7 with separate H.245: %v", err)
	}
	exchange(t, ctx, d, true)
	fmt.Println("inside: called separate")
	d.Hangup()
}

// exchange waits for c's media channels and exchanges 10 RTP packets each
// way. The inside party sends first: the relay reaches it only through
// the tunnel flow its first packet opens (docs/tunnel.md, media), so the
// outside party answers only what it received.
func exchange(t *testing.T, ctx context.Context, c *h323test.Call, inside bool) {
	t.Helper()
	if err := c.WaitMedia(ctx); err != nil {
		t.Fatal(err)
	}
	if inside {
		if err := c.SendRTP(10); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReceived(ctx, 10); err != nil {
		t.Fatalf("RTP: %v", err)
	}
	if !inside {
		if err := c.SendRTP(10); err != nil {
			t.Fatal(err)
		}
	}
}
