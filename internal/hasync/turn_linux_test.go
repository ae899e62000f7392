package hasync

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"

	"github.com/portico-edge/portico/internal/turn"
)

// turnNodeEnv names the node a re-executed test binary plays in
// TestTURNFailoverNode; the TURN engine creates relay sockets on threads
// of its own, so each node runs as a whole process inside its namespace.
const turnNodeEnv = "PORTICO_TEST_TURN_NODE"

const (
	turnVIP     = "10.77.1.100"
	turnSecret  = "turn-failover-secret"
	turnRealm   = "portico"
	turnSyncB   = "10.77.1.2:7400"
	turnPortMin = 62000
)

// turnStatus is what a node process reports in its status file.
type turnStatus struct {
	Allocations []turn.AllocationInfo  `json:"allocations"`
	Standby     []turn.AllocationState `json:"standby"`
}

// TestTURNFailoverNode is not a test of its own: it is one Portico node
// (TURN server on the VIP plus its sync link) when TestTURNFailover runs
// the test binary with turnNodeEnv set, and returns at once otherwise.
func TestTURNFailoverNode(t *testing.T) {
	name := os.Getenv(turnNodeEnv)
	if name == "" {
		t.Skip("the node process of TestTURNFailover: runs only as its child, in a namespace")
	}
	statusFile := os.Getenv(turnNodeEnv + "_STATUS")
	srv, err := turn.New(turn.Config{
		Listen: turn.Listen{UDP: []string{turnVIP + ":3478"}},
		Realm:  turnRealm,
		Relay:  turn.Relay{Address: turnVIP, PortMin: turnPortMin, PortMax: turnPortMin + 99},
		Peers:  turn.PeerPolicy{Allow: []string{"10.77.1.0/24"}},
		Auth:   turn.Auth{Secret: turnSecret},
	}, turn.Deps{OnChange: func(key string) { turnNode.Changed(KindTURN, key) }})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Secret: testSecret}
	hb := cfg.withDefaults().Heartbeat
	hb.UnmarshalText([]byte("100ms"))
	cfg.Heartbeat = hb
	var ln net.Listener
	if name == "a" {
		cfg.Peer = turnSyncB
	} else {
		cfg.Listen = turnSyncB
		if ln, err = net.Listen("tcp", turnSyncB); err != nil {
			t.Fatal(err)
		}
	}
	turnNode, err = New(cfg, Deps{Name: "edge-" + name})
	if err != nil {
		t.Fatal(err)
	}
	turnNode.Register(KindTURN, TURN{Server: srv}, TURN{Server: srv})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(ctx) })
	wg.Go(func() { turnNode.Serve(ctx, ln) })
	// The parent kills the process; until then the status is written.
	for {
		b, _ := json.Marshal(turnStatus{Allocations: srv.Allocations(), Standby: srv.StandbyAllocations()})
		tmp := statusFile + ".tmp"
		if os.WriteFile(tmp, b, 0o600) == nil {
			os.Rename(tmp, statusFile)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// turnNode is the node process's sync link, named in the TURN server's
// OnChange before it exists.
var turnNode *Node

// TestTURNFailover: a TURN client in the outside namespace allocates
// through node A on the VIP (pion's TURN client, as browsers' stacks do)
// and exchanges datagrams every 5 ms with a peer in the inside namespace
// through a channel. A replicates the allocation to node B, which keeps
// a standby copy whose relay socket is bound to the VIP with IP_FREEBIND.
// A's process is killed, the VIP moves to B with ip addr, and the data
// flows on both ways through B with no new allocation; a Refresh sent
// after the move is answered by B, one with a wrong password is not.
func TestTURNFailover(t *testing.T) {
	const (
		addrA, addrB = "10.77.1.1", "10.77.1.2"
		addrO, addrI = "10.77.1.10", "10.77.1.20"
	)
	l := newNetLab(t, map[string]string{"a": addrA, "b": addrB, "o": addrO, "i": addrI})
	ip(t, "-n", l.ns("a"), "addr", "add", turnVIP+"/24", "dev", "eth0")
	for _, h := range []string{"a", "b"} {
		// Listeners bind the VIP before the node holds it (docs/ha.md).
		if out, err := exec.Command("ip", "netns", "exec", l.ns(h), "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind").CombinedOutput(); err != nil {
			t.Fatalf("ip_nonlocal_bind: %v: %s", err, out)
		}
	}
	dir := t.TempDir()
	status := func(h string) turnStatus {
		var s turnStatus
		b, err := os.ReadFile(filepath.Join(dir, h+".json"))
		if err == nil {
			json.Unmarshal(b, &s)
		}
		return s
	}
	start := func(h string) *exec.Cmd {
		cmd := exec.Command("ip", "netns", "exec", l.ns(h), os.Args[0], "-test.run=^TestTURNFailoverNode$")
		cmd.Env = append(os.Environ(), turnNodeEnv+"="+h, turnNodeEnv+"_STATUS="+filepath.Join(dir, h+".json"))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("node %s output:\n%s", h, out.String())
			}
		})
		return cmd
	}
	start("b")
	eventually(t, "node B up", func() bool { _, err := os.Stat(filepath.Join(dir, "b.json")); return err == nil })
	nodeA := start("a")
	eventually(t, "node A up", func() bool { _, err := os.Stat(filepath.Join(dir, "a.json")); return err == nil })

	thO, thI := l.thread("o"), l.thread("i")
	var (
		conn, peer net.PacketConn
		err        error
	)
	thO.do(func() { conn, err = net.ListenPacket("udp4", addrO+":0") })
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	thI.do(func() { peer, err = net.ListenPacket("udp4", addrI+":5000") })
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	username := fmt.Sprintf("%d:alice", time.Now().Add(time.Hour).Unix())
	password := turn.RESTPassword(turnSecret, username)
	server := turnVIP + ":3478"
	c, err := pturn.NewClient(&pturn.ClientConfig{STUNServerAddr: server, TURNServerAddr: server,
		Username: username, Password: password, Realm: turnRealm, Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	var relay net.PacketConn
	eventually(t, "allocate through A", func() bool {
		relay, err = c.Allocate()
		return err == nil
	})
	defer relay.Close()
	relayed := relay.LocalAddr().String()

	// Client to peer and peer to client, a datagram every 5 ms each way.
	var toPeer, toClient atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(done); peer.Close(); relay.Close(); wg.Wait() }()
	peerAddr := &net.UDPAddr{IP: net.ParseIP(addrI), Port: 5000}
	relayAddr, _ := net.ResolveUDPAddr("udp4", relayed)
	every := func(f func()) {
		wg.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					f()
				}
			}
		})
	}
	every(func() { relay.WriteTo([]byte("to-peer"), peerAddr) })
	every(func() { peer.WriteTo([]byte("to-client"), relayAddr) })
	read := func(pc net.PacketConn, want string, n *atomic.Int64) {
		wg.Go(func() {
			buf := make([]byte, 1500)
			for {
				k, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				if string(buf[:k]) == want {
					n.Add(1)
				}
			}
		})
	}
	read(peer, "to-peer", &toPeer)
	read(relay, "to-client", &toClient)
	got := func() int64 { return min(toPeer.Load(), toClient.Load()) }

	eventually(t, "data both ways through A", func() bool { return got() >= 50 })
	eventually(t, "B holds the allocation with its channel", func() bool {
		s := status("b")
		return len(s.Standby) == 1 && s.Standby[0].Relay.String() == relayed && len(s.Standby[0].Channels) == 1 &&
			len(s.Standby[0].Permissions) == 1 && len(s.Allocations) == 0
	})

	// A dies; its VIP moves to B.
	nodeA.Process.Kill()
	nodeA.Wait()
	ip(t, "-n", l.ns("a"), "addr", "del", turnVIP+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("b"), "addr", "add", turnVIP+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("o"), "neigh", "flush", "dev", "eth0")
	ip(t, "-n", l.ns("i"), "neigh", "flush", "dev", "eth0")
	beforeUp, beforeDown := toPeer.Load(), toClient.Load()
	eventually(t, "data both ways through B", func() bool {
		return toPeer.Load() >= beforeUp+100 && toClient.Load() >= beforeDown+100
	})
	if s := status("b"); len(s.Allocations) != 0 || len(s.Standby) != 1 || s.Standby[0].Relay.String() != relayed {
		t.Fatalf("B made a new allocation or lost the copy: %+v", s)
	}

	// Requests through B carry the nonce A issued at first: B answers 438
	// (Stale Nonce) with a nonce of its own, as it does for its own
	// allocations, and the client's retry with it is answered.
	nonce := "issued-by-a"
	transact := func(pass string, method stun.Method, attrs ...stun.Setter) (*stun.Message, error) {
		for range 2 {
			setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
			setters = append(setters, stun.NewUsername(username), stun.NewRealm(turnRealm), stun.NewNonce(nonce),
				stun.NewLongTermIntegrity(username, turnRealm, pass), stun.Fingerprint)
			msg, err := stun.Build(setters...)
			if err != nil {
				return nil, err
			}
			res, err := c.PerformTransaction(msg, &net.UDPAddr{IP: net.ParseIP(turnVIP), Port: 3478}, false)
			if err != nil {
				return nil, err
			}
			var code stun.ErrorCodeAttribute
			var n stun.Nonce
			if res.Msg.Type.Class != stun.ClassErrorResponse || code.GetFrom(res.Msg) != nil || code.Code != stun.CodeStaleNonce || n.GetFrom(res.Msg) != nil {
				return res.Msg, nil
			}
			nonce = n.String()
		}
		return nil, fmt.Errorf("%s: 438 twice", method)
	}
	// Refresh through B: the right key is answered with the lifetime
	// asked for; a wrong one is refused.
	lifetime := stun.RawAttribute{Type: stun.AttrLifetime, Value: binary.BigEndian.AppendUint32(nil, 900)}
	refresh := func(pass string) (*stun.Message, error) { return transact(pass, stun.MethodRefresh, lifetime) }
	expBefore := status("b").Standby[0].Expires
	resp, err := refresh(password)
	if err != nil {
		t.Fatal(err)
	}
	if nonce == "issued-by-a" {
		t.Errorf("B answered a Refresh carrying A's nonce")
	}
	if resp.Type != stun.NewType(stun.MethodRefresh, stun.ClassSuccessResponse) {
		t.Fatalf("Refresh through B: %v", resp)
	}
	if v, err := resp.Get(stun.AttrLifetime); err != nil || binary.BigEndian.Uint32(v) != 900 {
		t.Fatalf("Refresh through B: lifetime %x, %v", v, err)
	}
	if err := stun.NewLongTermIntegrity(username, turnRealm, password).Check(resp); err != nil {
		t.Fatalf("Refresh response integrity: %v", err)
	}
	eventually(t, "B extends the allocation", func() bool {
		s := status("b")
		return len(s.Standby) == 1 && s.Standby[0].Expires.After(expBefore.Add(4*time.Minute))
	})
	if resp, err := refresh("wrong"); err != nil || resp.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("Refresh with a wrong password: %v, %v", resp, err)
	}

	// The permission and channel refreshes a client sends every few
	// minutes are answered by B too.
	var number uint16
	for n := range status("b").Standby[0].Channels {
		number = n
	}
	peerAttr := xorPeer{IP: net.ParseIP(addrI), Port: 5000}
	for _, tc := range []struct {
		name   string
		method stun.Method
		attrs  []stun.Setter
	}{
		{"CreatePermission", stun.MethodCreatePermission, []stun.Setter{peerAttr}},
		{"ChannelBind", stun.MethodChannelBind, []stun.Setter{
			stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(number >> 8), byte(number), 0, 0}}, peerAttr}},
	} {
		res, err := transact(password, tc.method, tc.attrs...)
		if err != nil || res.Type != stun.NewType(tc.method, stun.ClassSuccessResponse) {
			t.Fatalf("%s through B: %v, %v", tc.name, res, err)
		}
	}
	before := got()
	eventually(t, "data both ways through B after the refreshes", func() bool { return got() >= before+50 })
}

// xorPeer sets XOR-PEER-ADDRESS (RFC 8656 §18.3).
type xorPeer stun.XORMappedAddress

func (p xorPeer) AddTo(m *stun.Message) error {
	return stun.XORMappedAddress(p).AddToAs(m, stun.AttrXORPeerAddress)
}
