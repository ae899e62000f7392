package h323proxy

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/h460"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/policy"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/testpeer"
)

// Addresses of the second edge ("B", the traversal client) of the zone
// tests; the first ("A", the traversal server) has the usual ones, with
// its outside on edgeAOut so that its RAS and call signalling can use the
// well-known ports 1719 and 1720, which tshark dissects.
var (
	edgeAOut = netip.MustParseAddr("127.0.0.121")
	edgeBOut = netip.MustParseAddr("127.0.0.131")
	edgeBIn  = netip.MustParseAddr("127.0.0.132")
	gkBIP    = netip.MustParseAddr("127.0.0.133")
	epBIP    = netip.MustParseAddr("127.0.0.134")
)

// TestZoneCallsBothWays runs two Portico H.323 edges in one test: A is
// the traversal server (what Portico is for outside endpoints), B has a
// traversal zone toward A and registers to it with H.460.18. Each edge
// has its own inside gatekeeper and an inside endpoint registered to it
// (the simulators stand in for GnuGk and real endpoints).
//
// A to B: the endpoint inside A calls the alias B registered; A's inside
// gatekeeper routes the Setup to A, A sends B an SCI, B answers SCR,
// connects to A and sends the Facility with the call identifier, takes
// the Setup that A sends on that connection and routes it to its inside
// gatekeeper as a federated call of the zone.
//
// B to A: B's inside gatekeeper locates the alias at B (LRQ, sent from
// its address as GnuGk does to a neighbour), the endpoint inside B calls
// B, B admits the call at A by ARQ and sets it up over a connection it
// opens; A routes it to its inside endpoint.
//
// RTP crosses both relays both ways in both calls; a live capture of
// what crossed between the edges is dissected by tshark without a
// malformed packet.
func TestZoneCallsBothWays(t *testing.T) {
	testpeer.Require(t, "tshark")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	capt := testpeer.StartCapture(t, fmt.Sprintf("host %s or (udp and host %s)", edgeBOut, testpeer.ProbeIP), 1719)

	gkA := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: gatekeeperIP, TimeToLive: 60, Routed: true})
	a := startEdge(t, gkA, policy.Guest{}, edgeAOut, porticoIn, DefaultRASPort, 24, nil)
	gkB := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{ID: "gk-b", IP: gkBIP, TimeToLive: 60, Routed: true})
	b := startEdge(t, gkB, policy.Guest{}, edgeBOut, edgeBIn, 0, 24, func(c *Config) {
		c.Zones = []Zone{{Name: "edge-a", Server: a.extRAS, Aliases: []string{"edge-b", "3001"}, Prefixes: []string{"2"}}}
	})

	epA := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gkA.RASAddr(), IP: insideEPIP})
	defer epA.Close()
	epB := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "3001", Gatekeeper: gkB.RASAddr(), IP: epBIP})
	defer epB.Close()
	// An alias of B's network that B does not register at A: its calls
	// are B's, admitted by B's ARQ.
	epB2 := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "3777", Gatekeeper: gkB.RASAddr(), IP: epBIP})
	defer epB2.Close()
	for _, ep := range []*h323test.Endpoint{epA, epB, epB2} {
		if err := ep.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitZone(t, ctx, b.s, ZoneRegistered)
	if _, ok := a.s.Outside("3001"); !ok {
		t.Fatal("A holds no registration for the zone's alias 3001")
	}

	for _, opts := range []h323test.CallOptions{{FastStart: true}, {H245: h323test.Separate}} {
		// With a separate H.245 connection, the callee inside B announces
		// its h245Address: A cannot connect to B (a traversal client), so
		// it asks B with a Facility startH245 to connect to A.
		t.Run(fmt.Sprintf("A calls B through the zone (fastStart %v, H.245 %s)", opts.FastStart, opts.H245), func(t *testing.T) {
			talkThrough(t, ctx, epA, epB, "3001", opts, porticoIn, edgeBIn)
		})
	}
	gkRAS := newPeer(t, gkBIP)
	for i, opts := range []h323test.CallOptions{{FastStart: true}, {H245: h323test.Separate}} {
		// With a separate H.245 connection, the callee inside A announces
		// its h245Address: A listens on its outside and B connects out to
		// it, the direction a traversal client's firewall allows.
		t.Run(fmt.Sprintf("B calls A through the zone (fastStart %v, H.245 %s)", opts.FastStart, opts.H245), func(t *testing.T) {
			gkRAS.send(b.inRASAddr, ras.LRQ(9+i, []h225.AliasAddress{ras.E164("2001")}, gkRAS.addr()))
			_, m := gkRAS.expect(h225.RasMessage_LocationConfirm)
			dst := ap(t, &m.LocationConfirm.CallSignalAddress)
			if dst != b.inSignal {
				t.Fatalf("LCF callSignalAddress = %v, want B's inside %v", dst, b.inSignal)
			}
			opts.Direct = dst
			talkThrough(t, ctx, epB2, epA, "2001", opts, edgeBIn, porticoIn)
		})
	}

	t.Run("keep-alives both ways during a call", func(t *testing.T) {
		// B keeps its connections to A alive as a traversal client; A
		// keeps those of its H.460.18 client B alive as a traversal server
		// (1s interval in these edges). The call lasts until each has sent
		// three on call signalling.
		c, err := epA.Call(ctx, "3001", h323test.CallOptions{H245: h323test.Separate})
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		in, err := epB.Incoming(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []*porticoE2E{a, b} {
			for e.s.cs.KeepAlives.Load() < 3 {
				select {
				case <-ctx.Done():
					t.Fatalf("%d keep-alives sent", e.s.cs.KeepAlives.Load())
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
		c.Hangup()
		<-in.Done()
	})
	recsB := b.calls.wait(t, ctx, 5)
	for i, r := range recsB {
		if r.CallType != "zone:edge-a" || r.Disposition != "normal" {
			t.Errorf("B's record %d: type %q, disposition %q; want zone:edge-a, normal", i, r.CallType, r.Disposition)
		}
	}
	recsA := a.calls.wait(t, ctx, 5)
	for i, want := range []string{"inbound", "inbound", policy.CallerRegistered, policy.CallerRegistered, "inbound"} {
		if r := recsA[i]; r.CallType != want || r.Disposition != "normal" {
			t.Errorf("A's record %d: type %q, disposition %q; want %q, normal", i, r.CallType, r.Disposition, want)
		}
	}
	// The call B answered was admitted at A (ARQ answerCall, relayed to
	// A's gatekeeper), and each call through the zone disengaged there
	// (DRQ answered DCF).
	answers := 0
	for _, m := range gkA.Received() {
		if m.RAS != nil && m.From == a.inRASAddr && m.RAS.Choice == h225.RasMessage_AdmissionRequest && m.RAS.AdmissionRequest.AnswerCall {
			answers++
		}
	}
	if answers != 3 {
		t.Errorf("A's gatekeeper saw %d answering ARQs, want B's three", answers)
	}
	for ctx.Err() == nil && testutilCount(b.s.zones[0].m.events.WithLabelValues("edge-a", "disengaged")) < 5 {
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutilCount(b.s.zones[0].m.events.WithLabelValues("edge-a", "disengaged")); got != 5 {
		t.Errorf("%v calls disengaged at A, want 5", got)
	}
	st := b.s.Zones()[0]
	if st.State != ZoneRegistered || st.CallsIn != 3 || st.CallsOut != 2 || st.Registrations != 1 {
		t.Errorf("zone status %+v", st)
	}
	capt.Stop(t)
	out, err := exec.Command("tshark", "-r", capt.File, "-Y", "(h225 or q931 or h245) and ip.src != "+testpeer.ProbeIP, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(text, "Malformed") || strings.Contains(text, "[Expert Info (Error") {
		t.Fatalf("tshark reports errors between the edges:\n%s", text)
	}
	for _, want := range []string{"gatekeeperRequest", "registrationRequest", "registrationConfirm", "serviceControlIndication",
		"serviceControlResponse", "facility", "setup", "connect", "admissionRequest", "admissionConfirm", "releaseComplete",
		"disengageRequest", "disengageConfirm", "startH245", "Signalling Traversal", "openLogicalChannelAck"} {
		if !strings.Contains(text, want) {
			t.Errorf("the capture between the edges lacks %q", want)
		}
	}
	// Empty TPKT keep-alives crossed both ways, on call signalling and on
	// H.245.
	for _, dir := range [][2]netip.Addr{{edgeBOut, edgeAOut}, {edgeAOut, edgeBOut}} {
		var sig, h245 int
		for _, f := range capture.Frames(t, capt.File, fmt.Sprintf("ip.src == %s && ip.dst == %s && tcp.len == 4", dir[0], dir[1])) {
			if !bytes.Equal(f.Payload, []byte{3, 0, 0, 4}) {
				continue
			}
			if f.SrcPort == int(a.extSig.Port()) || f.DstPort == int(a.extSig.Port()) {
				sig++
			} else {
				h245++
			}
		}
		if sig < 2 || h245 < 1 {
			t.Errorf("%s to %s: %d empty TPKTs on call signalling, %d on H.245", dir[0], dir[1], sig, h245)
		}
	}
	// B is a traversal client: every TCP connection between the edges
	// (call signalling, H.245) is one B opened.
	syns, err := exec.Command("tshark", "-r", capt.File, "-Y", fmt.Sprintf("tcp.flags.syn == 1 && tcp.flags.ack == 0 && ip.src == %s", edgeAOut)).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, syns)
	}
	if n := strings.Count(strings.TrimSpace(string(syns)), "\n"); strings.Contains(string(syns), "TCP") {
		t.Errorf("A opened %d TCP connections toward B:\n%s", n+1, syns)
	}
	for _, inside := range []netip.Addr{edgeBIn, gkBIP, epBIP, porticoIn, gatekeeperIP, insideEPIP} {
		if strings.Contains(text, inside.String()) {
			t.Errorf("an inside address (%s) crossed between the edges", inside)
		}
	}
}

// talkThrough has caller call dest (callee answers), RTP cross both
// ways, each side talking to the relay address on its side, and hangs up.
func talkThrough(t *testing.T, ctx context.Context, caller, callee *h323test.Endpoint, dest string, opts h323test.CallOptions,
	callerRelay, calleeRelay netip.Addr) {
	t.Helper()
	c, err := caller.Call(ctx, dest, opts)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	in, err := callee.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mediaBothWays(t, ctx, c, in, callerRelay, calleeRelay)
	c.Hangup()
	<-in.Done()
}

// waitZone waits until the first zone of s is in state.
func waitZone(t *testing.T, ctx context.Context, s *Server, state string) ZoneStatus {
	t.Helper()
	for {
		st := s.Zones()[0]
		if st.State == state {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("zone %+v, want %s", st, state)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// gnugkIP is the address of the stand-in that replays GnuGk's side of
// the reference captures as a traversal server.
var gnugkIP = netip.MustParseAddr("127.0.0.141")

// TestZoneReplaysGnuGkTraversal has Portico's traversal client meet
// GnuGk's side of the reference captures (read at run time, not copied):
// the captured GCF and RCF (with H.460.18) answer its GRQ and RRQ, the
// captured SCI (its callSignalAddress moved to the stand-in's listener)
// asks for a call, and Portico must answer SCR, connect, send the
// Facility with the SCI's call identifier, and take the captured Setup
// that follows on that connection to its inside gatekeeper and endpoint.
func TestZoneReplaysGnuGkTraversal(t *testing.T) {
	ref := capture.RefDir()
	if ref == "" {
		t.Skip("../shared/ref beside the repository is absent: no reference captures")
	}
	files, _ := filepath.Glob(filepath.Join(ref, "captures", "gnugk", "gk-h323plus*.pcapng"))
	if len(files) == 0 {
		t.Fatal("no GnuGk H.460.18 captures")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { replayGnuGk(t, file) })
	}
}

func replayGnuGk(t *testing.T, file string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	parse := func(filter string) []*h225.RasMessage {
		var out []*h225.RasMessage
		for _, f := range capture.Frames(t, file, filter) {
			if m, err := ras.Parse(f.Payload); err == nil && !f.Malformed {
				out = append(out, m)
			}
		}
		return out
	}
	gcfs := parse(fmt.Sprintf("h225.RasMessage == %d", h225.RasMessage_GatekeeperConfirm))
	var rcf *h225.RasMessage
	for _, m := range parse(fmt.Sprintf("h225.RasMessage == %d", h225.RasMessage_RegistrationConfirm)) {
		if ras.FeatureIn(m.RegistrationConfirm.FeatureSet, ras.H46018) != nil {
			rcf = m
			break
		}
	}
	scis := parse(fmt.Sprintf("h225.RasMessage == %d", h225.RasMessage_ServiceControlIndication))
	if len(gcfs) == 0 || rcf == nil || len(scis) == 0 {
		t.Fatalf("%s: GCF %d, H.460.18 RCF %v, SCI %d", file, len(gcfs), rcf != nil, len(scis))
	}
	sci := scis[0]
	ic, err := ras.FindIncomingCall(sci)
	if err != nil {
		t.Fatal(err)
	}
	// The captured Setup GnuGk sent on the connection the SCI asked for.
	var setup []byte
	var dest string
	for _, p := range capture.TPKTPackets(t, file, "tcp.len > 0") {
		var m q931.Message
		if m.Parse(p.Payload) != nil || m.Type != q931.Setup {
			continue
		}
		uu, err := m.UserUser()
		var ui h225.H323UserInformation
		if err != nil || ui.Unmarshal(uu) != nil || ui.H323UuPdu.H323MessageBody.Setup == nil {
			continue
		}
		s := ui.H323UuPdu.H323MessageBody.Setup
		if s.CallIdentifier.Guid == nil || !bytes.Equal(s.CallIdentifier.Guid, ic.CallID) || len(s.DestinationAddress) == 0 {
			continue
		}
		dest, _ = ras.AliasString(&s.DestinationAddress[0])
		setup = p.Payload // the last one: GnuGk's, after the endpoint's to GnuGk
	}
	if setup == nil || dest == "" {
		t.Fatalf("%s: no Setup for the SCI's call %x", file, ic.CallID)
	}

	server := newPeer(t, gnugkIP)
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(gnugkIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gkB := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{ID: "gk-b", IP: gkBIP, TimeToLive: 60, Routed: true})
	b := startEdge(t, gkB, policy.Guest{}, edgeBOut, edgeBIn, 0, 24, func(c *Config) {
		c.Zones = []Zone{{Name: "gnugk", Server: server.addr(), Aliases: []string{"edge-b"}, Prefixes: []string{"99"}}}
	})
	callee := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: dest, Gatekeeper: gkB.RASAddr(), IP: epBIP})
	defer callee.Close()
	if err := callee.Register(ctx); err != nil {
		t.Fatal(err)
	}

	from, m := server.expect(h225.RasMessage_GatekeeperRequest)
	if ras.FeatureIn(m.GatekeeperRequest.FeatureSet, ras.H46018) == nil {
		t.Error("the GRQ does not offer H.460.18")
	}
	gcfs[0].GatekeeperConfirm.RequestSeqNum = m.GatekeeperRequest.RequestSeqNum
	server.send(from, gcfs[0])
	_, m = server.expect(h225.RasMessage_RegistrationRequest)
	rrq := m.RegistrationRequest
	if ras.FeatureIn(rrq.FeatureSet, ras.H46018) == nil || rrq.HasKeepAlive && rrq.KeepAlive {
		t.Errorf("the RRQ is no full H.460.18 registration: %+v", rrq)
	}
	rcf.RegistrationConfirm.RequestSeqNum = rrq.RequestSeqNum
	server.send(from, rcf)
	waitZone(t, ctx, b.s, ZoneRegistered)

	ic.CallSignal = addrOf(ln.Addr())
	g, err := ras.IncomingCall(ic)
	if err != nil {
		t.Fatal(err)
	}
	sci.ServiceControlIndication.FeatureSet = ras.Supported(g)
	server.send(from, sci)
	_, m = server.expect(h225.RasMessage_ServiceControlResponse)
	if m.ServiceControlResponse.RequestSeqNum != sci.ServiceControlIndication.RequestSeqNum {
		t.Errorf("SCR seq %d, SCI's %d", m.ServiceControlResponse.RequestSeqNum, sci.ServiceControlIndication.RequestSeqNum)
	}
	ln.SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("Portico did not connect for the SCI: %v", err)
	}
	defer conn.Close()
	if got := addrOf(conn.RemoteAddr()).Addr(); got != edgeBOut {
		t.Errorf("connected from %v, want Portico's outside %v", got, edgeBOut)
	}
	fr := h245proxy.NewFrameReader(conn, 0)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := FacilityCallID(p); !ok || !bytes.Equal(id[:], ic.CallID) {
		t.Fatalf("first message is no Facility for call %x: %x", ic.CallID, p)
	}
	if _, err := conn.Write(h245proxy.AppendFrame(nil, setup)); err != nil {
		t.Fatal(err)
	}
	in, err := callee.Incoming(ctx)
	if err != nil {
		t.Fatalf("the captured Setup did not reach the inside endpoint: %v", err)
	}
	for {
		p, err := fr.Next()
		if err != nil {
			t.Fatalf("no Connect from Portico: %v", err)
		}
		var q q931.Message
		if err := q.Parse(p); err != nil {
			t.Fatal(err)
		}
		if q.Type == q931.Connect {
			break
		}
	}
	if start := startH245(t, file, ic.CallID); start != nil {
		// Without tunnelling GnuGk asks the endpoint behind NAT to open
		// H.245 with a Facility startH245 (its h245Address moved to a
		// listener of the stand-in): Portico connects and starts with the
		// H.460.18 genericIndication of the call it answered.
		h245ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(gnugkIP, 0)))
		if err != nil {
			t.Fatal(err)
		}
		defer h245ln.Close()
		a := ras.Transport(addrOf(h245ln.Addr()))
		start.uu.H323UuPdu.H323MessageBody.Facility.H245Address = &a
		if _, err := conn.Write(h245proxy.AppendFrame(nil, start.encode(t))); err != nil {
			t.Fatal(err)
		}
		h245ln.SetDeadline(time.Now().Add(10 * time.Second))
		hc, err := h245ln.Accept()
		if err != nil {
			t.Fatalf("Portico did not open the H.245 connection startH245 asked for: %v", err)
		}
		defer hc.Close()
		hc.SetReadDeadline(time.Now().Add(10 * time.Second))
		p, err := h245proxy.NewFrameReader(hc, 0).Next()
		if err != nil {
			t.Fatal(err)
		}
		var m h245.MultimediaSystemControlMessage
		if err := m.Unmarshal(p); err != nil {
			t.Fatal(err)
		}
		ind, ok, err := h460.ParseIndication(&m)
		if !ok || err != nil || !bytes.Equal(ind.CallID[:], ic.CallID) || !ind.AnswerCall {
			t.Errorf("first H.245 message is no genericIndication answering call %x: %+v, %v, %v", ic.CallID, ind, ok, err)
		}
		t.Logf("the captured Facility startH245 had Portico open H.245 with the genericIndication")
	}
	conn.Close()
	<-in.Done()
	recs := b.calls.wait(t, ctx, 1)
	if recs[0].CallType != "zone:gnugk" {
		t.Errorf("record type %q, want zone:gnugk", recs[0].CallType)
	}
}

// TestZoneReRegisters: a stand-in traversal server (a scripted peer)
// grants a 1s keep-alive interval; the zone keeps alive with lightweight
// RRQs, registers in full again after an RRJ, after an URQ (answered
// UCF) and after the server stops answering, and a server that refuses
// (GRJ) is retried. State and counters follow.
func TestZoneReRegisters(t *testing.T) {
	server := newPeer(t, gnugkIP)
	h := newHarness(t, func(c *Config) {
		c.Zones = []Zone{{Name: "far", Server: server.addr(), Aliases: []string{"edge-b"}, Prefixes: []string{"9"}}}
	})
	// confirm answers a GRQ and the RRQ after it.
	confirm := func() (netip.AddrPort, *h225.RegistrationRequest) {
		t.Helper()
		from, rrq := server.confirmZone(1)
		if rrq.HasKeepAlive && rrq.KeepAlive {
			t.Fatal("a keep-alive RRQ where a full one was due")
		}
		if names := aliasNames(rrq.TerminalAlias); len(names) != 1 || names[0] != "edge-b" {
			t.Errorf("RRQ aliases %v, want [edge-b]", names)
		}
		return from, rrq
	}
	keepAlive := func() (netip.AddrPort, *h225.RegistrationRequest) {
		t.Helper()
		from, m := server.expect(h225.RasMessage_RegistrationRequest)
		if r := m.RegistrationRequest; !r.HasKeepAlive || !r.KeepAlive || bmp(r.EndpointIdentifier) != "EP-1" {
			t.Fatalf("want a keep-alive RRQ for EP-1, got %+v", r)
		}
		return from, m.RegistrationRequest
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	confirm()
	waitZone(t, ctx, h.s, ZoneRegistered)
	from, rrq := keepAlive()
	server.send(from, ras.RCF(rrq, "far-gk", "EP-1", netip.AddrPortFrom(gnugkIP, 1720), 1))
	from, rrq = keepAlive()
	server.send(from, ras.RRJ(rrq, h225.RegistrationRejectReason_FullRegistrationRequired))
	confirm()
	waitZone(t, ctx, h.s, ZoneRegistered)

	urq := ras.URQ(77, ras.Endpoint{EndpointID: "EP-1"})
	server.send(from, urq)
	// The UCF, then (a keep-alive RRQ may cross) a full registration.
	for {
		_, m := server.recv()
		if m.Choice == h225.RasMessage_UnregistrationConfirm {
			break
		}
	}
	for {
		from2, m := server.recv()
		if m.Choice == h225.RasMessage_GatekeeperRequest {
			server.send(from2, ras.GRJ(m.GatekeeperRequest, h225.GatekeeperRejectReason_ResourceUnavailable))
			break
		}
	}
	waitZone(t, ctx, h.s, ZoneFailed)
	// After the GRJ, retried (1s later).
	confirm()
	waitZone(t, ctx, h.s, ZoneRegistered)

	// The server goes silent: three unanswered keep-alives, then
	// registration again.
	for range zoneTries {
		keepAlive()
	}
	confirm()
	st := waitZone(t, ctx, h.s, ZoneRegistered)
	if st.Registrations != 4 || st.Failures < 3 || st.KeepAlives < 1 || st.EndpointID != "EP-1" || st.KeepAlive != 1 {
		t.Errorf("zone status %+v", st)
	}
	if got := testutilCount(h.s.zones[0].m.events.WithLabelValues("far", "unregistered")); got != 1 {
		t.Errorf("unregistered events %v, want 1", got)
	}
}

// confirmZone answers, as a traversal server, a zone's GRQ and the RRQ
// after it with H.460.18 (keepAlive, when not 0, the keepAliveInterval
// granted in seconds); it returns where they came from and the RRQ.
func (p *peer) confirmZone(keepAlive int64) (netip.AddrPort, *h225.RegistrationRequest) {
	p.t.Helper()
	from, m := p.expect(h225.RasMessage_GatekeeperRequest)
	gcf := ras.GCF(m.GatekeeperRequest, "far-gk", p.addr())
	gcf.GatekeeperConfirm.FeatureSet = ras.Supported(ras.Feature(ras.H46018))
	p.send(from, gcf)
	_, m = p.expect(h225.RasMessage_RegistrationRequest)
	rrq := m.RegistrationRequest
	rcf := ras.RCF(rrq, "far-gk", "EP-1", netip.AddrPortFrom(p.addr().Addr(), 1720), 30)
	f := ras.Feature(ras.H46018)
	if keepAlive > 0 {
		param := ras.Flag(H46018KeepAliveInterval)
		param.Content = &h225.Content{Choice: h225.Content_Number16, Number16: keepAlive}
		f = ras.Feature(ras.H46018, param)
	}
	rcf.RegistrationConfirm.FeatureSet = ras.Supported(f)
	p.send(from, rcf)
	return from, rrq
}

// capturedQ931 is a captured Q.931 message with its decoded UUIE.
type capturedQ931 struct {
	m  q931.Message
	uu *h225.H323UserInformation
}

func (c *capturedQ931) encode(t *testing.T) []byte {
	t.Helper()
	b, err := c.uu.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c.m.SetUserUser(b)
	out, err := c.m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startH245 returns the captured Facility startH245 for callID in file,
// or nil.
func startH245(t *testing.T, file string, callID []byte) *capturedQ931 {
	for _, p := range capture.TPKTPackets(t, file, "tcp.len > 0") {
		c := &capturedQ931{}
		if c.m.Parse(p.Payload) != nil || c.m.Type != q931.Facility {
			continue
		}
		var err error
		if c.uu, err = decodeUUIE(&c.m); err != nil {
			continue
		}
		f := c.uu.H323UuPdu.H323MessageBody.Facility
		if f != nil && f.Reason.Choice == h225.FacilityReason_StartH245 && f.CallIdentifier != nil && bytes.Equal(f.CallIdentifier.Guid, callID) {
			return c
		}
	}
	return nil
}

func decodeUUIE(m *q931.Message) (*h225.H323UserInformation, error) {
	uu, err := m.UserUser()
	if err != nil {
		return nil, err
	}
	ui := new(h225.H323UserInformation)
	return ui, ui.Unmarshal(uu)
}

// startEdge starts an H.323 edge as the app builds it (startE2EWith's
// service) on the outside and inside addresses out and in, with
// relayPorts media ports on each; rasPort, when not 0, is the outside RAS
// port and rasPort+1 the call-signalling one.
func startEdge(t *testing.T, gk *h323test.Gatekeeper, guest policy.Guest, out, in netip.Addr, rasPort uint16, relayPorts int, mod func(*Config)) *porticoE2E {
	t.Helper()
	lo := freePortsOn(t, []netip.Addr{out, in}, 2*relayPorts)
	relay, err := media.New(media.Config{Interfaces: map[string]media.InterfaceConfig{
		External: {Addr: out, PortMin: lo, PortMax: lo + relayPorts - 1},
		Internal: {Addr: in, PortMin: lo + relayPorts, PortMax: lo + 2*relayPorts - 1},
	}, Latching: media.LatchNAT}, media.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Compile("policy.rules", policy.WithGuests(nil, guest))
	if err != nil {
		t.Fatal(err)
	}
	e := &porticoE2E{relay: relay, calls: &callHistory{}, reg: prometheus.NewRegistry()}
	ports := uint16(freePortsOn(t, []netip.Addr{out, in}, 4))
	ext := cmp.Or(rasPort, ports)
	e.extRAS, e.extSig = netip.AddrPortFrom(out, ext), netip.AddrPortFrom(out, ext+1)
	e.inSignal, e.inRASAddr = netip.AddrPortFrom(in, ports+2), netip.AddrPortFrom(in, ports+3)
	cfg := Config{ExternalRAS: e.extRAS, ExternalSignalPort: e.extSig.Port(), InternalRAS: e.inRASAddr, InternalSignal: e.inSignal,
		Gatekeeper: gk.RASAddr(), GatekeeperSignal: gk.CallSignalAddr(), Traversal: true, KeepAliveInterval: time.Second, TimeToLive: 30 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	if e.s, err = New(cfg, Deps{Logger: slog.New(slog.DiscardHandler), Registerer: e.reg, Media: relay, Calls: e.calls.add, Policy: pol.Evaluate}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); relay.Run(ctx) }()
	ran := make(chan error, 1)
	go func() { ran <- e.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		wg.Wait()
		relay.Close()
	})
	for !e.s.Ready() {
		select {
		case err := <-ran:
			t.Fatalf("Run: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return e
}

// freePortsOn returns the first of n consecutive ports that are free, TCP
// and UDP, on each of ips (the edges' own loopback addresses, so ports
// other processes hold on 127.0.0.1 do not matter).
func freePortsOn(t *testing.T, ips []netip.Addr, n int) int {
	t.Helper()
	for range 200 {
		base := 20000 + rand.IntN(12000-n) // below the ephemeral range
		var open []io.Closer
		ok := true
		for p := base; p < base+n && ok; p++ {
			for _, ip := range ips {
				a := netip.AddrPortFrom(ip, uint16(p))
				l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(a))
				if err != nil {
					ok = false
					break
				}
				open = append(open, l)
				u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
				if err != nil {
					ok = false
					break
				}
				open = append(open, u)
			}
		}
		for _, c := range open {
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports on %v", n, ips)
	return 0
}

// zoneFrom derives the Zone of one h323.zones entry as the document's
// section does.
func zoneFrom(t *testing.T, z ZoneSection) Zone {
	t.Helper()
	c, err := Section{Enabled: true, Gatekeeper: "10.0.0.5", Zones: []ZoneSection{z}}.Config(Interfaces{External: "198.51.100.1", Internal: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Zones[0]
}

// TestZoneServerByName: a zone's server given by DNS name (a loopback
// DNS server here, h323.federation.dns_server) is resolved at each
// registration: by its A record with the port given, or, without a port,
// by its _h323rs._udp SRV record. When the record moves, the next
// registration (after an URQ here) goes to the new address. A name that
// does not resolve, or that resolves to the inside gatekeeper or to
// Portico's own RAS address, leaves the zone failed with the reason in
// its last error, and nothing is sent there.
func TestZoneServerByName(t *testing.T) {
	first := newPeer(t, gnugkIP)
	port := first.addr().Port()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(edgeAOut, port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	second := &peer{t: t, c: c} // the server's new address, same port
	dns := &dnsZone{
		srv: map[string]dnsmessage.SRVResource{"_h323rs._udp.rs.example.": {Priority: 10, Weight: 1, Port: port,
			Target: dnsmessage.MustNewName("gk.rs.example.")}},
		a: map[string]netip.Addr{"edge.example.": gnugkIP, "gk.rs.example.": gnugkIP, "inside.example.": gatekeeperIP, "self.example.": outsideIP},
	}
	dnsAddr := dns.start(t)
	confirm := func(server *peer) { t.Helper(); server.confirmZone(0) }
	edge := func(t *testing.T, server string, mod func(*Config)) *harness {
		z := zoneFrom(t, ZoneSection{Name: "far", Server: server, Aliases: []string{"edge-b"}, Prefixes: []string{"9"}})
		return newHarness(t, func(c *Config) {
			c.Zones, c.DNSServer = []Zone{z}, dnsAddr
			if mod != nil {
				mod(c)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("A record, followed when it moves", func(t *testing.T) {
		h := edge(t, fmt.Sprintf("edge.example:%d", port), nil)
		confirm(first)
		st := waitZone(t, ctx, h.s, ZoneRegistered)
		if want := netip.AddrPortFrom(gnugkIP, port).String(); st.Address != want || st.Server != fmt.Sprintf("edge.example:%d", port) {
			t.Errorf("zone server %q at %q, want edge.example:%d at %s", st.Server, st.Address, port, want)
		}
		dns.set("edge.example.", edgeAOut)
		first.send(h.s.zones[0].local(), ras.URQ(77, ras.Endpoint{EndpointID: "EP-1"}))
		first.expect(h225.RasMessage_UnregistrationConfirm)
		confirm(second)
		st = waitZone(t, ctx, h.s, ZoneRegistered)
		if want := netip.AddrPortFrom(edgeAOut, port).String(); st.Address != want || st.Registrations != 2 {
			t.Errorf("zone at %q after %d registrations, want %s after 2", st.Address, st.Registrations, want)
		}
	})
	t.Run("SRV record", func(t *testing.T) {
		h := edge(t, "rs.example", nil)
		confirm(first)
		if st := waitZone(t, ctx, h.s, ZoneRegistered); st.Address != first.addr().String() {
			t.Errorf("zone at %q, want %s from the SRV record", st.Address, first.addr())
		}
	})
	for _, tc := range []struct {
		name, server, reason string
	}{
		{"no such name", "nowhere.example", "nowhere.example"},
		{"the inside gatekeeper", "inside.example", "the inside gatekeeper"},
		{"Portico itself", "self.example", "Portico's own RAS address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h *harness
			server := tc.server
			if tc.name == "the inside gatekeeper" || tc.name == "Portico itself" {
				// the port the harness's gatekeeper or Portico listens on
				h = edge(t, server, func(c *Config) {
					ap := c.Gatekeeper
					if tc.name == "Portico itself" {
						ap = c.ExternalRAS
					}
					c.Zones[0].Server = netip.AddrPortFrom(netip.Addr{}, ap.Port())
				})
			} else {
				h = edge(t, server, nil)
			}
			st := waitZone(t, ctx, h.s, ZoneFailed)
			if !strings.Contains(st.LastError, tc.reason) || st.Address != "" {
				t.Errorf("zone failed with %q at %q, want the reason %q and no address", st.LastError, st.Address, tc.reason)
			}
			// A datagram sent on loopback before the state changed would
			// be waiting already.
			h.gk.c.SetReadDeadline(time.Now())
			if n, from, err := h.gk.c.ReadFromUDPAddrPort(make([]byte, 2048)); err == nil {
				t.Errorf("the inside gatekeeper received %d bytes from %v", n, from)
			}
		})
	}
}

// TestZoneCallLoop runs two edges whose traversal zones point at each
// other, each registering the alias 5001 at the other: each inside
// gatekeeper routes 5001 to its edge, which sends the call to the other
// edge, whose inside gatekeeper routes it back. The endpoint inside A
// calls 5001: A sends the call to B, B's gatekeeper routes it to B, B
// sends it back to A, and A, which has the call (by its callIdentifier)
// going out already, refuses it with ReleaseComplete, cause 25, history
// "call loop". The refusal unwinds the legs before it: each edge recorded
// two, all ended by the loop, and nothing is left.
func TestZoneCallLoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bRAS := netip.AddrPortFrom(edgeBOut, uint16(freePortsOn(t, []netip.Addr{edgeBOut}, 2)))
	// A few calls each: without a guard, the loop ends there.
	const maxCalls = 6
	gkA := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: gatekeeperIP, TimeToLive: 60, Routed: true})
	a := startEdge(t, gkA, policy.Guest{}, edgeAOut, porticoIn, DefaultRASPort, 24, func(c *Config) {
		c.MaxCalls = maxCalls
		c.Zones = []Zone{{Name: "edge-b", Server: bRAS, Aliases: []string{"edge-a", "5001"}, Prefixes: []string{"5"}}}
	})
	gkB := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{ID: "gk-b", IP: gkBIP, TimeToLive: 60, Routed: true})
	b := startEdge(t, gkB, policy.Guest{}, edgeBOut, edgeBIn, bRAS.Port(), 24, func(c *Config) {
		c.MaxCalls = maxCalls
		c.Zones = []Zone{{Name: "edge-a", Server: a.extRAS, Aliases: []string{"edge-b", "5001"}, Prefixes: []string{"5"}}}
	})
	epA := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gkA.RASAddr(), IP: insideEPIP})
	defer epA.Close()
	if err := epA.Register(ctx); err != nil {
		t.Fatal(err)
	}
	waitZone(t, ctx, a.s, ZoneRegistered)
	waitZone(t, ctx, b.s, ZoneRegistered)
	for _, gk := range []*h323test.Gatekeeper{gkA, gkB} {
		if _, ok := gk.Registered("5001"); !ok {
			t.Fatal("5001 is not registered at both inside gatekeepers")
		}
	}

	if c, err := epA.Call(ctx, "5001", h323test.CallOptions{}); err == nil {
		c.Hangup()
		t.Fatal("the looping call was connected")
	}
	for _, e := range []*porticoE2E{a, b} {
		waitUntil(t, ctx, "no call left", func() bool { return e.s.cs.Calls() == 0 })
	}
	recsA, recsB := a.calls.wait(t, ctx, 2), b.calls.wait(t, ctx, 2)
	loops := 0
	for name, recs := range map[string][]store.CallRecord{"A": recsA, "B": recsB} {
		if len(recs) != 2 {
			t.Errorf("%s recorded %d legs, want 2", name, len(recs))
		}
		for _, r := range recs {
			if r.Disposition != "call loop" {
				t.Errorf("%s's record %s %s→%s: disposition %q, want call loop", name, r.CallType, r.From, r.To, r.Disposition)
			}
			if r.EndedBy == "portico" {
				loops++
			}
		}
	}
	if loops != 1 {
		t.Errorf("%d legs refused by Portico, want the one that came back", loops)
	}
	if got := a.s.cs.Loops.Load(); got != 1 {
		t.Errorf("A counted %v loops, want 1", got)
	}
}
