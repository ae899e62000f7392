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
// (decode, community and USM checks, answer): it must never panic, and
// anything it answers must decode as an SNMP message.
func FuzzHandle(f *testing.F) {
	for _, b := range seedMessages(f) {
		f.Add(b)
	}
	sec := testSection()
	sec.Communities[0].Networks = []string{"0.0.0.0/0"}
	a, err := New(sec, Env{Node: "fuzz"}, Deps{Provider: &staticProvider{testSnapshot()}})
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
