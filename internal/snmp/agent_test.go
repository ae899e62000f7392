package snmp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/portico-edge/portico/internal/testpeer"
)

// staticProvider stands in for the node in the agent's own tests (the
// node's provider is tested in internal/app): a fixed snapshot.
type staticProvider struct{ s Snapshot }

func (p *staticProvider) Snapshot() Snapshot { return p.s }

func testSnapshot() Snapshot {
	return Snapshot{
		Node: "edge-1", Version: "test", Started: time.Now().Add(-time.Hour), Ready: true, StoreUp: true, ConfigVersion: 7,
		Services:  []Service{{Name: "sip", Up: true}, {Name: "turn", Up: false, Error: "not running"}},
		Protocols: []Protocol{{Name: "sip", Registrations: 12, ActiveCalls: 3, CallsTotal: 4000000000000}, {Name: "h323", Registrations: 2}},
		Relay:     Relay{Sessions: 5, Packets: 1 << 40, Bytes: 1 << 45, PacketsLost: 17},
		Tunnel:    "disabled", HA: "disabled", TURNAllocations: 9,
		Certificates: []Certificate{{Name: "management", NotAfter: time.Now().Add(400 * 24 * time.Hour)}},
	}
}

const (
	testAuth = "auth-pass-123"
	testPriv = "priv-pass-456"
)

func testSection() Section {
	s := DefaultSection()
	s.Enabled = true
	s.Contact = "noc@example.net"
	s.Location = "dmz rack 4"
	s.Communities = []Community{{Community: "s3cret-ro", Networks: []string{"127.0.0.0/8"}}, {Community: "far-away", Networks: []string{"10.0.0.0/8"}}}
	s.Users = []User{{Name: "monitor", AuthKey: testAuth, PrivKey: testPriv}, {Name: "authonly", AuthKey: testAuth, PrivProtocol: "none"}}
	return s
}

// startAgent serves a on a loopback socket and returns host:port.
func startAgent(t *testing.T, a *Agent) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return pc.LocalAddr().String()
}

func newTestAgent(t *testing.T, sec Section, p Provider) *Agent {
	t.Helper()
	a, err := New(sec, Env{Node: "edge-1", Version: "test", DataDir: t.TempDir()}, Deps{Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// netsnmp runs a net-snmp tool with no MIBs loaded and no user
// configuration, one try with a one-second timeout.
func netsnmp(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	path := testpeer.Require(t, tool)[0]
	cmd := exec.Command(path, append([]string{"-r", "0", "-t", "1", "-On", "-m", ""}, args...)...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "SNMPCONFPATH="+home, "SNMP_PERSISTENT_DIR="+home, "MIBS=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func v3args(user, auth, priv string) []string {
	args := []string{"-v3", "-u", user, "-a", "SHA-256", "-A", auth}
	if priv == "" {
		return append(args, "-l", "authNoPriv")
	}
	return append(args, "-l", "authPriv", "-x", "AES", "-X", priv)
}

// TestNetSNMP: net-snmp's snmpget, snmpwalk and snmpbulkwalk read the
// system group, the interfaces and the Portico MIB over v2c and v3
// authPriv (SHA-256, AES-128) and authNoPriv.
func TestNetSNMP(t *testing.T) {
	a := newTestAgent(t, testSection(), &staticProvider{testSnapshot()})
	addr := startAgent(t, a)
	for _, tc := range []struct {
		name string
		sec  []string
	}{
		{"v2c", []string{"-v2c", "-c", "s3cret-ro"}},
		{"v3 authPriv", v3args("monitor", testAuth, testPriv)},
		{"v3 authNoPriv", v3args("authonly", testAuth, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := netsnmp(t, "snmpget", append(tc.sec, addr, ".1.3.6.1.2.1.1.5.0", ".1.3.6.1.4.1.99999.1.4.3.0", ".1.3.6.1.2.1.1.99.0", ".1.3.6.1.6.3.10.2.1.1.0", ".1.3.6.1.6.3.10.2.1.2.0")...)
			if err != nil {
				t.Fatalf("snmpget: %v\n%s", err, out)
			}
			for _, want := range []string{`.1.3.6.1.2.1.1.5.0 = STRING: "edge-1"`, ".1.3.6.1.4.1.99999.1.4.3.0 = Counter64: 35184372088832",
				".1.3.6.1.2.1.1.99.0 = No Such Object", ".1.3.6.1.6.3.10.2.1.1.0 = Hex-STRING: " + hexWords(a.EngineID()), ".1.3.6.1.6.3.10.2.1.2.0 = INTEGER: 1"} {
				if !strings.Contains(out, want) {
					t.Errorf("snmpget output lacks %q:\n%s", want, out)
				}
			}
			out, err = netsnmp(t, "snmpwalk", append(tc.sec, addr, ".1.3.6.1.2.1.1")...)
			if err != nil {
				t.Fatalf("snmpwalk: %v\n%s", err, out)
			}
			for _, want := range []string{`.1.3.6.1.2.1.1.1.0 = STRING: "Portico test"`, ".1.3.6.1.2.1.1.2.0 = OID: .1.3.6.1.4.1.99999",
				".1.3.6.1.2.1.1.3.0 = Timeticks:", `.1.3.6.1.2.1.1.4.0 = STRING: "noc@example.net"`, `.1.3.6.1.2.1.1.6.0 = STRING: "dmz rack 4"`, ".1.3.6.1.2.1.1.7.0 = INTEGER: 72"} {
				if !strings.Contains(out, want) {
					t.Errorf("snmpwalk output lacks %q:\n%s", want, out)
				}
			}
			out, err = netsnmp(t, "snmpbulkwalk", append(tc.sec, "-Cr50", addr, ".1.3.6.1")...)
			if err != nil {
				t.Fatalf("snmpbulkwalk: %v\n%s", err, out)
			}
			lo := 0
			if ifs, _ := net.Interfaces(); len(ifs) > 0 {
				lo = ifs[0].Index
			}
			for _, want := range []string{
				".1.3.6.1.2.1.2.2.1.2." + strconv.Itoa(lo) + " = STRING: ", ".1.3.6.1.2.1.31.1.1.1.6." + strconv.Itoa(lo) + " = Counter64: ",
				`.1.3.6.1.4.1.99999.1.2.1.2.2 = STRING: "turn"`, ".1.3.6.1.4.1.99999.1.2.1.3.2 = INTEGER: 2",
				`.1.3.6.1.4.1.99999.1.3.1.2.1 = STRING: "sip"`, ".1.3.6.1.4.1.99999.1.3.1.3.1 = Gauge32: 12", ".1.3.6.1.4.1.99999.1.3.1.5.1 = Counter64: 4000000000000",
				".1.3.6.1.4.1.99999.1.1.9.0 = Gauge32: 9", ".1.3.6.1.4.1.99999.1.5.1.3.1 = INTEGER: 399",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("snmpbulkwalk output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	if n := a.stats.requests[0].Load(); n == 0 {
		t.Error("no v2c request counted")
	}
}

// TestRefused: a wrong community, a community from outside its networks,
// an unknown user, a wrong authentication key, a wrong privacy key and a
// security level below the user's get no answer the manager can use, and
// each is counted by its reason.
func TestRefused(t *testing.T) {
	a := newTestAgent(t, testSection(), &staticProvider{testSnapshot()})
	addr := startAgent(t, a)
	for _, tc := range []struct {
		name, want string
		args       []string
		reason     int
	}{
		{"wrong community", "Timeout", []string{"-v2c", "-c", "public"}, reasonCommunity},
		{"community from another network", "Timeout", []string{"-v2c", "-c", "far-away"}, reasonCommunity},
		{"unknown user", "Unknown user name", v3args("intruder", testAuth, testPriv), reasonUnknownUser},
		{"wrong auth key", "Authentication failure", v3args("monitor", "not-the-key", testPriv), reasonDigest},
		{"wrong priv key", "Decryption error", v3args("monitor", testAuth, "not-the-key"), reasonDecrypt},
		{"below the user's level", "Unsupported security level", v3args("monitor", testAuth, ""), reasonSecLevel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.stats.refused[tc.reason].Load()
			out, err := netsnmp(t, "snmpget", append(tc.args, addr, ".1.3.6.1.2.1.1.5.0")...)
			if err == nil || strings.Contains(out, "edge-1") {
				t.Fatalf("answered: %s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("snmpget said %q, want %q", out, tc.want)
			}
			if a.stats.refused[tc.reason].Load() == before {
				t.Errorf("%s not counted", reasonNames[tc.reason])
			}
		})
	}
}

// TestEngineAcrossRestarts: the engine ID stays with the node name and
// snmpEngineBoots grows by one per start, kept in the data directory.
func TestEngineAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	var ids [][]byte
	for want := uint32(1); want <= 3; want++ {
		a, err := New(testSection(), Env{Node: "edge-1", DataDir: dir}, Deps{Provider: &staticProvider{}})
		if err != nil {
			t.Fatal(err)
		}
		a.start()
		if got := a.boots.Load(); got != want {
			t.Errorf("start %d: boots %d", want, got)
		}
		ids = append(ids, a.EngineID())
	}
	if string(ids[0]) != string(ids[2]) || string(ids[0]) == string(DefaultEngineID("edge-2")) {
		t.Errorf("engine IDs %x", ids)
	}
	if ids[0][0]&0x80 == 0 || ids[0][4] != 5 {
		t.Errorf("engine ID %x is not RFC 3411 format 5", ids[0])
	}
}

// TestRateLimit: past rate_per_second requests from one source in one
// second are dropped and counted; another source is still answered.
func TestRateLimit(t *testing.T) {
	l := limiter{per: 3}
	now := time.Unix(1000, 0)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 3 {
		if !l.allow(a, now) {
			t.Fatalf("request %d refused", i)
		}
	}
	if l.allow(a, now) {
		t.Error("fourth request in one second allowed")
	}
	if !l.allow(b, now) {
		t.Error("another source refused")
	}
	if !l.allow(a, now.Add(time.Second)) {
		t.Error("refused in the next second")
	}
}

// hexWords is b as net-snmp prints a Hex-STRING: "80 01 86 9F ...".
func hexWords(b []byte) string {
	var parts []string
	for _, c := range b {
		parts = append(parts, fmt.Sprintf("%02X", c))
	}
	return strings.Join(parts, " ")
}

// TestNotInTimeWindow: a request with boots other than the agent's gets
// the authenticated notInTimeWindow report (RFC 3414 §3.2 step 7b), from
// which the manager (here gosnmp) takes the agent's boots and time and
// asks again successfully.
func TestNotInTimeWindow(t *testing.T) {
	a := newTestAgent(t, testSection(), &staticProvider{testSnapshot()})
	addr := startAgent(t, a)
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	g := &gosnmp.GoSNMP{Target: host, Port: uint16(p), Version: gosnmp.Version3, Timeout: time.Second, Retries: 1,
		SecurityModel: gosnmp.UserSecurityModel, MsgFlags: gosnmp.AuthPriv,
		SecurityParameters: &gosnmp.UsmSecurityParameters{UserName: "monitor", AuthoritativeEngineID: string(a.EngineID()),
			AuthoritativeEngineBoots: 40, AuthoritativeEngineTime: 7,
			AuthenticationProtocol: gosnmp.SHA256, AuthenticationPassphrase: testAuth, PrivacyProtocol: gosnmp.AES, PrivacyPassphrase: testPriv}}
	if err := g.Connect(); err != nil {
		t.Fatal(err)
	}
	defer g.Conn.Close()
	res, err := g.Get([]string{".1.3.6.1.2.1.1.5.0"})
	if a.stats.refused[reasonTimeWindow].Load() == 0 {
		t.Errorf("no notInTimeWindow counted (err %v)", err)
	}
	if err != nil || len(res.Variables) != 1 || string(res.Variables[0].Value.([]byte)) != "edge-1" {
		t.Fatalf("Get after resynchronising = %+v, %v", res, err)
	}
}

// TestReload: communities, users and system texts change live; the old
// community and key stop working at once; listen and engine_id are
// named for a restart.
func TestReload(t *testing.T) {
	a := newTestAgent(t, testSection(), &staticProvider{testSnapshot()})
	addr := startAgent(t, a)
	if out, err := netsnmp(t, "snmpget", append(v3args("monitor", testAuth, testPriv), addr, ".1.3.6.1.2.1.1.4.0")...); err != nil {
		t.Fatalf("before reload: %v\n%s", err, out)
	}
	next := testSection()
	next.Contact = "ops@example.net"
	next.Communities[0].Community = "rotated-ro"
	next.Users[0].AuthKey = "rotated-auth-key"
	restart, err := a.Reload(next, Env{})
	if err != nil || len(restart) != 0 {
		t.Fatalf("Reload = %v, %v", restart, err)
	}
	out, err := netsnmp(t, "snmpget", "-v2c", "-c", "rotated-ro", addr, ".1.3.6.1.2.1.1.4.0")
	if err != nil || !strings.Contains(out, `"ops@example.net"`) {
		t.Errorf("new community: %v\n%s", err, out)
	}
	if out, err := netsnmp(t, "snmpget", "-v2c", "-c", "s3cret-ro", addr, ".1.3.6.1.2.1.1.4.0"); err == nil {
		t.Errorf("old community still answered: %s", out)
	}
	if out, err := netsnmp(t, "snmpget", append(v3args("monitor", testAuth, testPriv), addr, ".1.3.6.1.2.1.1.4.0")...); err == nil || !strings.Contains(out, "Authentication failure") {
		t.Errorf("old key: %v\n%s", err, out)
	}
	if out, err := netsnmp(t, "snmpget", append(v3args("monitor", "rotated-auth-key", testPriv), addr, ".1.3.6.1.2.1.1.4.0")...); err != nil {
		t.Errorf("new key: %v\n%s", err, out)
	}
	next.Listen, next.EngineID = []string{"127.0.0.1:1161"}, "8000000001020304"
	if restart, err := a.Reload(next, Env{}); err != nil || strings.Join(restart, ",") != "snmp.listen,snmp.engine_id" {
		t.Errorf("Reload = %v, %v; want snmp.listen and snmp.engine_id for a restart", restart, err)
	}
	next.RatePerSecond = 0
	if _, err := a.Reload(next, Env{}); err == nil {
		t.Error("an invalid section was applied")
	}
}
