package ldap

import (
	"errors"
	"testing"
)

// A real ldapsearch StartTLS request and a search request captured as bytes.
var (
	startTLSReq = []byte{0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16, '1', '.', '3', '.', '6', '.', '1', '.', '4', '.', '1', '.', '1', '4', '6', '6', '.', '2', '0', '0', '3', '7'}
	bindReq     = []byte{0x30, 0x0c, 0x02, 0x01, 0x02, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00}
)

func searchReq(id int32, base string) []byte {
	var body []byte
	body = appendString(body, 0x04, base)
	body = append(body, 0x0a, 0x01, 0x02, 0x0a, 0x01, 0x00, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x01, 0x01, 0x00)
	body = appendString(body, 0x87, "objectClass")
	body = append(body, 0x30, 0x00)
	var inner []byte
	inner = appendInt(inner, 0x02, id)
	inner = appendTL(inner, SearchRequest, len(body))
	inner = append(inner, body...)
	return append(appendTL(nil, 0x30, len(inner)), inner...)
}

func TestParse(t *testing.T) {
	big := searchReq(300, string(make([]byte, 300)))
	tests := []struct {
		name    string
		in      []byte
		id      int32
		op      byte
		wantErr error
	}{
		{name: "starttls", in: startTLSReq, id: 1, op: ExtendedRequest},
		{name: "anonymous bind", in: bindReq, id: 2, op: BindRequest},
		{name: "search long form length", in: big, id: 300, op: SearchRequest},
		{name: "unbind", in: []byte{0x30, 0x05, 0x02, 0x01, 0x03, 0x42, 0x00}, id: 3, op: UnbindRequest},
		{name: "with controls", in: []byte{0x30, 0x09, 0x02, 0x01, 0x03, 0x42, 0x00, 0xa0, 0x02, 0x30, 0x00}, id: 3, op: UnbindRequest},
		{name: "short", in: startTLSReq[:10], wantErr: ErrShort},
		{name: "empty", in: nil, wantErr: ErrShort},
		{name: "not a sequence", in: []byte{0x31, 0x00}, wantErr: ErrMalformed},
		{name: "indefinite length", in: []byte{0x30, 0x80, 0x02, 0x01, 0x01, 0x42, 0x00, 0x00, 0x00}, wantErr: ErrMalformed},
		{name: "negative id", in: []byte{0x30, 0x05, 0x02, 0x01, 0xff, 0x42, 0x00}, wantErr: ErrMalformed},
		{name: "op not application", in: []byte{0x30, 0x05, 0x02, 0x01, 0x01, 0x04, 0x00}, wantErr: ErrMalformed},
		{name: "trailing junk", in: []byte{0x30, 0x07, 0x02, 0x01, 0x03, 0x42, 0x00, 0x04, 0x00}, wantErr: ErrMalformed},
		{name: "too large", in: []byte{0x30, 0x84, 0x10, 0, 0, 0}, wantErr: ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(tc.in, 1<<20)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (m.ID != tc.id || m.Op != tc.op || m.Len != len(tc.in)) {
				t.Fatalf("got id %d op %#x len %d", m.ID, m.Op, m.Len)
			}
		})
	}
}

func TestFields(t *testing.T) {
	m, _ := Parse(startTLSReq, 1<<20)
	if oid, err := ExtendedName(m.Body); err != nil || oid != StartTLSOID {
		t.Fatalf("oid %q %v", oid, err)
	}
	m, _ = Parse(searchReq(7, "ou=People,dc=example,dc=test"), 1<<20)
	if dn, err := SearchBaseDN(m.Body); err != nil || dn != "ou=People,dc=example,dc=test" {
		t.Fatalf("base %q %v", dn, err)
	}
	m, _ = Parse(bindReq, 1<<20)
	if n, err := BindName(m.Body); err != nil || n != "" {
		t.Fatalf("bind name %q %v", n, err)
	}
	res := AppendResult(nil, 200, ModifyResponse, InsufficientAccessRights, "", "read-only", "")
	m, err := Parse(res, 1<<20)
	if err != nil || m.ID != 200 || m.Op != ModifyResponse {
		t.Fatalf("result %+v %v", m, err)
	}
	if c, err := ResultCode(m.Body); err != nil || c != InsufficientAccessRights {
		t.Fatalf("code %d %v", c, err)
	}
	req := AppendExtendedRequest(nil, 1, StartTLSOID)
	if string(req) != string(startTLSReq) {
		t.Fatalf("extended request %x, want %x", req, startTLSReq)
	}
}

func TestUnderBase(t *testing.T) {
	tests := []struct {
		dn, base string
		want     bool
	}{
		{"uid=a,ou=People,dc=example,dc=test", "dc=example,dc=test", true},
		{"UID=a, OU=people, DC=Example, DC=test", "dc=example,dc=test", true},
		{"dc=example,dc=test", "dc=example,dc=test", true},
		{"dc=test", "dc=example,dc=test", false},
		{"dc=other,dc=test", "dc=example,dc=test", false},
		{"cn=x,dc=notexample,dc=test", "dc=example,dc=test", false},
		{"cn=a\\,dc=example,dc=test", "dc=example,dc=test", false}, // escaped comma: one RDN
		{"", "dc=example,dc=test", false},
		{"", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.dn+"|"+tc.base, func(t *testing.T) {
			if got := UnderBase(tc.dn, tc.base); got != tc.want {
				t.Fatalf("UnderBase = %v", got)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	in := searchReq(7, "ou=People,dc=example,dc=test")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(in, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(startTLSReq)
	f.Add(bindReq)
	f.Add(searchReq(5, "dc=example,dc=test"))
	f.Add(AppendResult(nil, 1, ExtendedResponse, 0, "", "", StartTLSOID))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b, 1<<16)
		if err != nil {
			return
		}
		if m.Len > len(b) || m.Len > 1<<16 || m.ID < 0 {
			t.Fatalf("bad message %+v for %d bytes", m, len(b))
		}
		n, err := Frame(b, 1<<16)
		if err != nil || n != m.Len {
			t.Fatalf("Frame = %d %v, Parse Len %d", n, err, m.Len)
		}
		_, _ = SearchBaseDN(m.Body)
		_, _ = BindName(m.Body)
		_, _ = ExtendedName(m.Body)
		_, _ = ResultCode(m.Body)
		out := AppendResult(nil, m.ID, ResponseTag(m.Op)|0x60, 53, "", "x", "")
		if m2, err := Parse(out, 1<<20); err != nil || m2.ID != m.ID {
			t.Fatalf("reply for id %d does not parse: %v", m.ID, err)
		}
	})
}
