package snmp

import (
	"net/netip"
	"testing"

	"github.com/gosnmp/gosnmp"
)

// seedMessages are well-formed requests: v2c Get, GetNext and GetBulk, and
// a v3 discovery probe.
func seedMessages(t testing.TB) [][]byte {
	var out [][]byte
	for _, typ := range []gosnmp.PDUType{gosnmp.GetRequest, gosnmp.GetNextRequest, gosnmp.GetBulkRequest, gosnmp.SetRequest} {
		p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "s3cret-ro", PDUType: typ, RequestID: 7, MaxRepetitions: 10,
			Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.5.0", Type: gosnmp.Null}, {Name: ".1.3.6.1.4.1.99999", Type: gosnmp.Null}}}
		b, err := p.MarshalMsg()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	probe := &gosnmp.SnmpPacket{Version: gosnmp.Version3, MsgFlags: gosnmp.Reportable, SecurityModel: gosnmp.UserSecurityModel,
		SecurityParameters: &gosnmp.UsmSecurityParameters{}, MsgID: 1, MsgMaxSize: 65507, PDUType: gosnmp.GetRequest, RequestID: 3}
	b, err := probe.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	return append(out, b)
}

// FuzzHandle feeds arbitrary datagrams to the agent's whole receive path
// (decode, community and USM checks, decryption, answer): it must never
// panic, and anything it answers must decode as an SNMP message. The
// corpus in testdata/fuzz/FuzzHandle holds requests net-snmp sent to an
// agent of the same node name and users, so the authenticated and
// encrypted paths are reached too.
func FuzzHandle(f *testing.F) {
	for _, b := range seedMessages(f) {
		f.Add(b)
	}
	sec := testSection()
	sec.Communities[0].Networks = []string{"0.0.0.0/0"}
	a, err := New(sec, Env{Node: "edge-1"}, Deps{Provider: &staticProvider{testSnapshot()}})
	if err != nil {
		f.Fatal(err)
	}
	a.start()
	src := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := a.handle(b, src)
		if resp == nil {
			return
		}
		if _, err := parseMessage(resp); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
	})
}

// TestCorpusAnswered: the net-snmp requests of the corpus are answered by
// an agent of the same node name, the authPriv one with an authPriv
// response, so the fuzzer starts from the deep paths.
func TestCorpusAnswered(t *testing.T) {
	a, err := New(testSection(), Env{Node: "edge-1"}, Deps{Provider: &staticProvider{testSnapshot()}})
	if err != nil {
		t.Fatal(err)
	}
	a.start()
	for _, name := range []string{"netsnmp-v2c-getbulk", "netsnmp-v3-authpriv-get", "netsnmp-v3-authnopriv-get"} {
		q := corpusMessage(t, name)
		resp := a.handle(q, netip.MustParseAddr("127.0.0.1"))
		m, err := parseMessage(resp)
		if err != nil {
			t.Fatalf("%s: answer %x: %v", name, resp, err)
		}
		if name == "netsnmp-v3-authpriv-get" && m.flags&(flagAuth|flagPriv) != flagAuth|flagPriv {
			t.Errorf("%s answered with flags %x", name, m.flags)
		}
	}
	if a.stats.requests[0].Load() != 1 || a.stats.requests[1].Load() != 2 {
		t.Errorf("answered v2c %d, v3 %d; want 1 and 2", a.stats.requests[0].Load(), a.stats.requests[1].Load())
	}
}
