package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// sippRun is one sipp process and its output.
type sippRun struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startSippVia starts sipp through the command prefix via (nil: here)
// with a 60 s bound; the test's end kills it if it still runs.
func startSippVia(t *testing.T, via []string, args ...string) *sippRun {
	t.Helper()
	bin := testpeer.Require(t, "sipp")[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	r := &sippRun{}
	all := append(append(via[:len(via):len(via)], bin), args...)
	all = append(all, "-nostdin", "-timeout", "30s")
	r.cmd = exec.CommandContext(ctx, all[0], all[1:]...)
	r.cmd.Dir = t.TempDir()
	// The built-in uac_pcap scenario plays pcap/g711a.pcap.
	_ = os.Symlink("/usr/share/sip-tester", filepath.Join(r.cmd.Dir, "pcap"))
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("sipp: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = r.cmd.Wait()
	})
	return r
}

// wait fails the test unless sipp ends with success.
func (r *sippRun) wait(t *testing.T, what string) {
	t.Helper()
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("%s: sipp %v\n%s", what, err, r.out.String())
	}
}

// TestTunnelSIP: the DMZ node's SIP edge reaches Kamailio inside only
// through the tunnel, and Kamailio reaches the DMZ node's internal SIP
// listener only through a reverse service offered on the inside node. Both
// ends see the other at the same address, so Via, Path and the call server
// address hold on both sides. An outside sipp registers through the DMZ
// node and calls an inside sipp UAS through Kamailio; an inside sipp calls
// another registered outside user.
func TestTunnelSIP(t *testing.T) {
	r := startTunnelSIPRig(t, "", 0)
	inNS, outNS, out, api, ext, kam := r.inNS, r.outNS, r.outIP, r.api, r.ext, r.kam
	// Outside → DMZ → tunnel → Kamailio → inside UAS.
	scen, _ := filepath.Abs("../internal/sipedge/testdata/sipp/reg_call.xml")
	startSippVia(t, outNS, "-sf", scen, "-key", "user", "alice", "-s", "1001", "-i", out,
		"-p", strconv.Itoa(testpeer.FreePort(t)), "-mp", strconv.Itoa(testpeer.FreePort(t)), "-rtp_echo", "-m", "1", "-d", "2000", ext).wait(t, "outside call")

	// Inside → Kamailio → reverse service → DMZ → registered outside user.
	bobPort := strconv.Itoa(testpeer.FreePort(t))
	reg, _ := filepath.Abs("testdata/sipp/reg_only.xml")
	startSippVia(t, outNS, "-sf", reg, "-key", "user", "bob", "-i", out, "-p", bobPort, "-m", "1", ext).wait(t, "bob registers")
	bob := startSippVia(t, outNS, "-sn", "uas", "-i", out, "-p", bobPort, "-mp", strconv.Itoa(testpeer.FreePort(t)), "-rtp_echo", "-m", "1")
	startSippVia(t, inNS, "-sn", "uac_pcap", "-s", "bob", "-i", "127.0.0.6", "-p", strconv.Itoa(testpeer.FreePort(t)),
		"-mp", strconv.Itoa(testpeer.FreePort(t)), "-m", "1", "-d", "2000", kam).wait(t, "inside call")
	bob.wait(t, "bob answers")

	hist := tunnelCalls(t, api, 2)
	for _, h := range hist {
		if h.Status != 200 || len(h.Streams) != 1 {
			t.Fatalf("call history %+v", hist)
		}
		// RTP relayed both ways: from the caller and back from the called.
		if st := h.Streams[0]; st.PacketsIn == 0 || st.PacketsOut == 0 {
			t.Errorf("%s call: media not relayed both ways through the tunnel: %+v", h.CallType, st)
		}
	}
	if _, flows := tunnelServices(t, api); flows["sip"] == 0 || flows["sip-in"] == 0 || flows["media"] < 2 {
		t.Errorf("tunnel flows %v: SIP or media did not cross", flows)
	}
}

// tunnelSIPRig is the DMZ node with the SIP edge and media relay, the
// inside node, Kamailio and a sipp UAS inside, joined by the tunnel with
// SIP both ways and the relay's internal port range mirrored inside.
type tunnelSIPRig struct {
	ns          *netnsPeer // inside
	inNS, outNS []string   // command prefixes: inside, outside
	outIP       string     // outside users' address
	api         *apiClient
	ext, kam    string // the DMZ node's external SIP address; Kamailio's
}

// startTunnelSIPRig starts the rig; media adds keys to the DMZ node's media
// section, and ports (0: the default 10) sizes each side's relay port range.
func startTunnelSIPRig(t *testing.T, media string, ports int) *tunnelSIPRig {
	t.Helper()
	testpeer.Require(t, "sipp", "kamailio", "nft", "curl")
	ns := newNetnsPeer(t)
	inNS := []string{"ip", "netns", "exec", ns.name}

	// Inside: a sipp UAS (the numbers Kamailio routes to it) and Kamailio.
	uasPort := strconv.Itoa(testpeer.FreePort(t))
	uas, _ := filepath.Abs("testdata/sipp/uas_pcap.xml")
	startSippVia(t, inNS, "-sf", uas, "-i", "127.0.0.5", "-p", uasPort, "-mp", strconv.Itoa(testpeer.FreePort(t)), "-rtp_echo")
	kam := fmt.Sprintf("127.0.0.4:%d", testpeer.FreePort(t))
	startKamailioVia(t, inNS, kam, func() bool {
		out, _ := exec.Command("ip", "netns", "exec", ns.name, "ss", "-Hlun", "src", kam).Output()
		return len(bytes.TrimSpace(out)) > 0
	}, `MCU_URI="sip:127.0.0.5:`+uasPort+`"`, "WITH_RR")

	// The DMZ node: SIP edge with its call server at Kamailio's address,
	// which the tunnel offers here; its internal listener's address is the
	// target of the reverse service the inside node offers, delivered from
	// Kamailio's IP address so that responses (sent to the Via port at the
	// source address) reach Kamailio through the tunnel too. Kamailio
	// record-routes, so in-dialog requests cross it instead of going to
	// inside contacts the DMZ node cannot reach.
	//
	// Media: the relay's internal port range is mirrored on the inside node
	// by a reverse range service, delivered from 127.0.0.4, the address
	// the relay lets internal legs latch from (media.internal_latch_from).
	// Inside endpoints send their RTP to the relay's internal address,
	// which the inside node holds; the relay latches on to the flow's
	// socket and answers through it.
	// The SIP ports are drawn again while one of them falls inside the
	// relay's port ranges (base to base+2*ports-1, below), which Portico
	// would refuse as a clash.
	extPort, intPort := testpeer.FreePort(t), testpeer.FreePort(t)
	for try := 0; ports > 0 && try < 50; try++ {
		base := 30000 + (extPort%50)*200
		if (extPort < base || extPort >= base+2*ports) && (intPort < base || intPort >= base+2*ports) {
			break
		}
		extPort, intPort = testpeer.FreePort(t), testpeer.FreePort(t)
	}
	intAddr := fmt.Sprintf("127.0.0.3:%d", intPort)
	dmzCfg := strings.Replace(sipNodeConfig(freeAddr(t), extPort, intPort, kam), "media:\n  enabled: true\n", "media:\n  enabled: true\n  internal_latch_from: 127.0.0.4\n"+media, 1)
	if ports > 0 {
		base := 30000 + (extPort%50)*200
		dmzCfg = regexp.MustCompile(`(?m)^  external: \{port_min: \d+, port_max: \d+\}\n  internal: \{port_min: \d+, port_max: \d+\}$`).ReplaceAllString(dmzCfg,
			fmt.Sprintf("  external: {port_min: %d, port_max: %d}\n  internal: {port_min: %d, port_max: %d}", base, base+ports-1, base+ports, base+2*ports-1))
		if !strings.Contains(dmzCfg, fmt.Sprintf("port_max: %d}", base+2*ports-1)) {
			t.Fatalf("relay port ranges not widened:\n%s", dmzCfg)
		}
	}
	// Outside users live in a namespace of their own, reaching the DMZ
	// node's external address (SIP and media) on their veth.
	outside := newNetnsPeerAt(t, 1)
	dmzCfg = strings.ReplaceAll(dmzCfg, "127.0.0.2", outside.hostIP)
	var lo, hi int
	if _, err := fmt.Sscanf(dmzCfg[strings.Index(dmzCfg, "  internal: {port_min:"):], "  internal: {port_min: %d, port_max: %d}", &lo, &hi); err != nil {
		t.Fatal(err)
	}
	mirror := fmt.Sprintf("127.0.0.3:%d-%d", lo, hi)
	pair := startTunnelPair(t, ns, dmzCfg,
		fmt.Sprintf("  - {name: sip, proto: udp, listen: %q}\n  - {name: sip-in, proto: udp, target: %q, source: 127.0.0.4}\n"+
			"  - {name: media, proto: udp, target: %q, source: 127.0.0.4}\n", kam, intAddr, mirror),
		fmt.Sprintf("  - {name: sip, proto: udp, target: %q}\n  - {name: sip-in, proto: udp, listen: %q}\n"+
			"  - {name: media, proto: udp, listen: %q}\n", kam, intAddr, mirror))
	api := pair.api
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range []*daemon{pair.dmz, pair.inside} {
				logs, _ := filepath.Glob(filepath.Join(d.dir, "*", "log", "portico.log"))
				more, _ := filepath.Glob(filepath.Join(d.dir, "log", "portico.log"))
				for _, l := range append(logs, more...) {
					b, _ := os.ReadFile(l)
					t.Logf("%s:\n%s", l, b)
				}
			}
		}
	})
	// The edge probes its call server with OPTIONS; until a probe crossed
	// the tunnel it counts Kamailio down and refuses calls.
	waitFor(t, 60*time.Second, func() bool {
		var cs []struct{ Up bool }
		api.must(200, "GET", "/api/v1/sip/call-servers", nil).json(t, &cs)
		return len(cs) == 1 && cs[0].Up
	})
	return &tunnelSIPRig{ns: ns, inNS: inNS, outNS: []string{"ip", "netns", "exec", outside.name}, outIP: outside.peerIP,
		api: api, ext: outside.hostIP + ":" + strconv.Itoa(extPort), kam: kam}
}

// TestTunnelSIPPathCut: during 20 calls from inside to a registered
// outside user, with RTP flowing both ways through the tunnel, the inside
// node's path to the DMZ node is cut for 3 s (nftables drops its packets;
// nothing is closed). Both ends see the tunnel fail, the inside node
// reconnects by itself, every call's media resumes on the new connection
// both ways, and every call ends normally. It runs with the relay's eBPF
// fast path on and off: the outside leg is on a veth and the internal leg
// on loopback.
func TestTunnelSIPPathCut(t *testing.T) {
	for _, fp := range []string{"on", "off"} {
		t.Run("fast_path_"+fp, func(t *testing.T) { tunnelPathCut(t, fp) })
	}
}

func tunnelPathCut(t *testing.T, fastPath string) {
	const calls = 20
	r := startTunnelSIPRig(t, "  fast_path: "+fastPath+"\n", 3*calls)
	lc := startLongCalls(t, r, calls)

	nft := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"netns", "exec", r.ns.name, "nft"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v %s", args, err, out)
		}
	}
	nft("add chain inet portico_test cut { type filter hook output priority 0; policy accept; }")
	nft("add rule inet portico_test cut ip daddr " + r.ns.hostIP + " drop")
	cut := time.Now()
	waitFor(t, 10*time.Second, func() bool { state, _ := tunnelStatus(t, r.api); return state == "down" })
	time.Sleep(time.Until(cut.Add(3 * time.Second)))
	nft("delete chain inet portico_test cut")
	waitFor(t, 15*time.Second, func() bool { state, _ := tunnelStatus(t, r.api); return state == "up" })
	lc.resumed(t)
	t.Logf("tunnel back and media resumed in all %d calls %v after the cut began", calls, time.Since(cut).Round(100*time.Millisecond))
	lc.end(t)
}

// longCalls are calls from an inside sipp to a registered outside sipp
// that echoes the media, each playing about 14 s of audio.
type longCalls struct {
	r           *tunnelSIPRig
	n           int
	caller, bob *sippRun
}

// startLongCalls starts n calls and waits until every one relays media
// both ways.
func startLongCalls(t *testing.T, r *tunnelSIPRig, n int) *longCalls {
	t.Helper()
	bobPort := strconv.Itoa(testpeer.FreePort(t))
	reg, _ := filepath.Abs("testdata/sipp/reg_only.xml")
	startSippVia(t, r.outNS, "-sf", reg, "-key", "user", "bob", "-i", r.outIP, "-p", bobPort, "-m", "1", r.ext).wait(t, "bob registers")
	lc := &longCalls{r: r, n: n}
	lc.bob = startSippVia(t, r.outNS, "-sn", "uas", "-i", r.outIP, "-p", bobPort, "-mp", strconv.Itoa(testpeer.FreePort(t)), "-rtp_echo", "-m", strconv.Itoa(n))
	uac, _ := filepath.Abs("testdata/sipp/uac_pcap_long.xml")
	lc.caller = startSippVia(t, r.inNS, "-sf", uac, "-s", "bob", "-i", "127.0.0.6", "-p", strconv.Itoa(testpeer.FreePort(t)),
		"-mp", strconv.Itoa(testpeer.FreePort(t)), "-m", strconv.Itoa(n), "-l", strconv.Itoa(n), "-r", "5", r.kam)
	t.Cleanup(func() {
		if t.Failed() {
			_ = lc.caller.cmd.Process.Kill() // its output is read once it stopped writing
			_ = lc.caller.cmd.Wait()
			t.Logf("inside caller:\n%s", lc.caller.out.String())
		}
	})
	waitFor(t, 60*time.Second, func() bool {
		now := liveStreams(t, r.api)
		if len(now) != n {
			return false
		}
		for _, s := range now {
			if s.PacketsIn == 0 || s.PacketsOut == 0 {
				return false
			}
		}
		return true
	})
	return lc
}

// resumed waits until every call relays more media both ways than now.
func (lc *longCalls) resumed(t *testing.T) {
	t.Helper()
	back := liveStreams(t, lc.r.api)
	if len(back) != lc.n {
		t.Fatalf("%d live calls, want %d", len(back), lc.n)
	}
	waitFor(t, 10*time.Second, func() bool {
		now := liveStreams(t, lc.r.api)
		for id, b := range back {
			if n, ok := now[id]; !ok || n.PacketsIn <= b.PacketsIn || n.PacketsOut <= b.PacketsOut {
				return false
			}
		}
		return true
	})
}

// end waits for the calls to end and checks that each ended normally with
// media both ways.
func (lc *longCalls) end(t *testing.T) {
	t.Helper()
	lc.caller.wait(t, "inside calls")
	lc.bob.wait(t, "bob answers")
	hist := tunnelCalls(t, lc.r.api, lc.n)
	for _, h := range hist {
		if h.Status != 200 || len(h.Streams) != 1 || h.Streams[0].PacketsIn == 0 || h.Streams[0].PacketsOut == 0 {
			t.Fatalf("call history %+v", hist)
		}
	}
}

// liveStream is a live call's first relay stream's counters.
type liveStream struct {
	PacketsIn  uint64 `json:"packets_in"`
	PacketsOut uint64 `json:"packets_out"`
}

// liveStreams is GET /api/v1/calls: each live call's first stream by call
// identifier.
func liveStreams(t *testing.T, api *apiClient) map[string]liveStream {
	t.Helper()
	var calls []struct {
		ID      string       `json:"id"`
		Streams []liveStream `json:"streams"`
	}
	api.must(200, "GET", "/api/v1/calls", nil).json(t, &calls)
	m := map[string]liveStream{}
	for _, c := range calls {
		if len(c.Streams) > 0 {
			m[c.ID] = c.Streams[0]
		}
	}
	return m
}

// tunnelCall is a call history record with its streams' packet counts.
type tunnelCall struct {
	CallType string `json:"call_type"`
	Status   int    `json:"status"`
	Streams  []struct {
		PacketsIn  uint64 `json:"packets_in"`
		PacketsOut uint64 `json:"packets_out"`
	} `json:"streams"`
}

// tunnelCalls waits until the call history holds n calls and returns them.
func tunnelCalls(t *testing.T, api *apiClient, n int) []tunnelCall {
	t.Helper()
	var hist []tunnelCall
	waitFor(t, 10*time.Second, func() bool {
		api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
		return len(hist) == n
	})
	return hist
}
