package test

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/store/storetest"
	"github.com/portico-edge/portico/internal/testpeer"
)

// scaleOutNode is one node of the scale-out test: its name, its external
// and internal addresses (loopback addresses of its own) and its
// management listener.
type scaleOutNode struct {
	name, ext, int, mgmt string
	d                    *daemon
	api                  *apiClient
}

// scaleOutConfig is the cluster's shared document, written for node a: a
// SIP node's document (sipNodeConfig) on node a's addresses and
// PostgreSQL, with each node's part giving it its own addresses; the SIP
// listeners on the shared interface addresses move to each node's own.
func scaleOutConfig(t *testing.T, nodes []*scaleOutNode, extPort, intPort int, kam string) string {
	t.Helper()
	var parts strings.Builder
	parts.WriteString("nodes:\n")
	for _, n := range nodes {
		fmt.Fprintf(&parts, "  - name: %s\n    interfaces: {external: {address: %s}, internal: {address: %s}}\n    management_listen: %s\n", n.name, n.ext, n.int, n.mgmt)
	}
	a := nodes[0]
	cfg := sipNodeConfig(a.mgmt, extPort, intPort, kam)
	for _, r := range [][2]string{
		{"127.0.0.2", a.ext}, {"127.0.0.3", a.int}, {"backend: sqlite", "backend: postgres"},
		{"  name: test-node\n", "  name: a\n"}, {"interfaces:\n", parts.String() + "interfaces:\n"},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("sipNodeConfig has no %q", r[0])
		}
		cfg = strings.ReplaceAll(cfg, r[0], r[1])
	}
	return cfg
}

// clusterReg is a row of GET /api/v1/registrations?scope=cluster.
type clusterReg struct {
	Node, AOR, Contact, Transport string
}

// clusterView is node n's view of the cluster's registrations, AOR -> node.
func clusterView(t *testing.T, n *scaleOutNode) map[string]string {
	t.Helper()
	var regs []clusterReg
	n.api.must(200, "GET", "/api/v1/registrations?scope=cluster", nil).json(t, &regs)
	out := map[string]string{}
	for _, r := range regs {
		out[r.AOR] = r.Node
	}
	return out
}

// TestScaleOutRegistrations: three `portico serve` nodes on one PostgreSQL,
// each on loopback addresses of its own, relay to Kamailio (registrar with
// Path support). An outside sipp registers through each node; node a's API
// lists all three registrations with the node holding each. Kamailio is
// asked by an inside sipp to call each user: the INVITE follows the Path to
// the node holding the user's flow, and the user answers. An inside INVITE
// for a flow sent to another node is refused with 404. A node that stops
// takes its registrations out of the cluster view; one killed drops out
// once its heartbeat is stale.
func TestScaleOutRegistrations(t *testing.T) {
	testpeer.Require(t, "sipp", "kamailio")
	pg := storetest.StartPostgres(t)
	env := []string{"PORTICO_STORE_DSN=" + pg.NewDatabase(t, "scaleout"), "PORTICO_ADMIN_PASSWORD=" + adminPassword}
	kam := startKamailio(t)
	nodes := []*scaleOutNode{
		{name: "a", ext: "127.0.0.11", int: "127.0.0.21"},
		{name: "b", ext: "127.0.0.12", int: "127.0.0.22"},
		{name: "c", ext: "127.0.0.13", int: "127.0.0.23"},
	}
	for _, n := range nodes {
		n.mgmt = freeAddr(t)
	}
	extPort, intPort := testpeer.FreePort(t), testpeer.FreePort(t)
	cfg := scaleOutConfig(t, nodes, extPort, intPort, kam)
	for i, n := range nodes {
		if i == 0 {
			n.d = startDaemon(t, t.TempDir(), cfg, n.mgmt, env...)
		} else {
			n.d = startNode(t, t.TempDir(), cfg, n.mgmt, n.name, env...)
		}
		n.api = newClient(t, n.d.url)
		n.api.csrf = true
		n.api.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("node %s:\n%s", n.name, n.d.out.String())
			}
		}
	})
	for _, n := range nodes {
		waitFor(t, 30*time.Second, func() bool {
			var cs []struct{ Up bool }
			n.api.must(200, "GET", "/api/v1/sip/call-servers", nil).json(t, &cs)
			return len(cs) == 1 && cs[0].Up
		})
	}

	// One user registers through each node.
	users := map[string]*scaleOutNode{"alice": nodes[0], "bob": nodes[1], "carol": nodes[2]}
	ports := map[string]string{}
	reg, _ := filepath.Abs("testdata/sipp/reg_only.xml")
	for u, n := range users {
		ports[u] = strconv.Itoa(testpeer.FreePort(t))
		startSippVia(t, nil, "-sf", reg, "-key", "user", u, "-i", "127.0.0.1", "-p", ports[u], "-m", "1",
			n.ext+":"+strconv.Itoa(extPort)).wait(t, u+" registers through node "+n.name)
	}
	want := map[string]string{}
	for u, n := range users {
		want["sip:"+u+"@portico.test"] = n.name
	}
	var view map[string]string
	waitFor(t, 15*time.Second, func() bool {
		view = clusterView(t, nodes[0])
		return fmt.Sprint(view) == fmt.Sprint(want)
	})
	// The node's own list still holds only its own registration.
	var own []struct {
		AOR       string
		FlowToken string `json:"flow_token"`
	}
	nodes[0].api.must(200, "GET", "/api/v1/registrations", nil).json(t, &own)
	if len(own) != 1 || own[0].AOR != "sip:alice@portico.test" {
		t.Fatalf("node a's own registrations: %+v", own)
	}
	nodes[0].api.must(400, "GET", "/api/v1/registrations?scope=galaxy", nil)

	// Kamailio calls each user; the INVITE reaches the node holding its
	// flow (and no other), and the user answers.
	invites := func(n *scaleOutNode) float64 {
		return metricSum(string(n.api.must(200, "GET", "/metrics", nil).body), `portico_sip_requests_total{interface="internal",method="INVITE"}`)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		before := map[string]float64{}
		for _, n := range nodes {
			before[n.name] = invites(n)
		}
		uas := startSippVia(t, nil, "-sn", "uas", "-i", "127.0.0.1", "-p", ports[u], "-mp", strconv.Itoa(testpeer.FreePort(t)), "-rtp_echo", "-m", "1")
		startSippVia(t, nil, "-sn", "uac_pcap", "-s", u, "-i", "127.0.0.5", "-p", strconv.Itoa(testpeer.FreePort(t)),
			"-mp", strconv.Itoa(testpeer.FreePort(t)), "-m", "1", "-d", "500", kam).wait(t, "Kamailio calls "+u)
		uas.wait(t, u+" answers")
		for _, n := range nodes {
			got := invites(n) - before[n.name]
			if owner := n == users[u]; owner && got < 1 || !owner && got != 0 {
				t.Errorf("call to %s (held by node %s): node %s received %v INVITEs", u, users[u].name, n.name, got)
			}
		}
	}

	// An inside INVITE for alice's flow (node a's Path) sent to node b is
	// refused: node b cannot reach alice's NAT flow.
	inviteOtherNode := fmt.Sprintf("INVITE sip:alice@127.0.0.1:%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %%s;branch=z9hG4bK-scaleout-1;rport\r\n"+
		"Route: <sip:%s@%s:%d;lr;ob;node=a>\r\n"+
		"From: <sip:caller@portico.test>;tag=scaleout\r\nTo: <sip:alice@portico.test>\r\n"+
		"Call-ID: scaleout-other-node\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@%%s>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		ports["alice"], own[0].FlowToken, nodes[0].int, intPort)
	if code := sendSIP(t, "127.0.0.6", nodes[1].int+":"+strconv.Itoa(intPort), inviteOtherNode); code != 404 {
		t.Errorf("INVITE for node a's flow sent to node b: final response %d, want 404", code)
	}
	if n := metricSum(string(nodes[1].api.must(200, "GET", "/metrics", nil).body), `portico_sip_rejected_total{reason="other_node"}`); n != 1 {
		t.Errorf("node b counted %v requests for another node's flow, want 1", n)
	}

	// Node b stops cleanly: its registration leaves the cluster view.
	nodes[1].d.stop()
	delete(want, "sip:bob@portico.test")
	waitFor(t, 15*time.Second, func() bool {
		view = clusterView(t, nodes[0])
		return fmt.Sprint(view) == fmt.Sprint(want)
	})
	// Node c dies: its rows stay in the store but are ignored once its
	// heartbeat is stale.
	nodes[2].d.cmd.Process.Kill()
	delete(want, "sip:carol@portico.test")
	waitFor(t, 30*time.Second, func() bool {
		view = clusterView(t, nodes[0])
		return fmt.Sprint(view) == fmt.Sprint(want)
	})
}

// sendSIP sends the request msg (two %s: the sender's address in Via and
// Contact) over UDP from host to dst and returns the status of the first
// final response, 0 when none came within 10 s.
func sendSIP(t *testing.T, host, dst, msg string) int {
	t.Helper()
	c, err := net.ListenPacket("udp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to, err := net.ResolveUDPAddr("udp", dst)
	if err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().String()
	if _, err := c.WriteTo([]byte(fmt.Sprintf(msg, local, local)), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.SetReadDeadline(deadline)
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return 0
		}
		var code int
		if _, err := fmt.Sscanf(string(buf[:n]), "SIP/2.0 %d", &code); err == nil && code >= 200 {
			return code
		}
	}
}
