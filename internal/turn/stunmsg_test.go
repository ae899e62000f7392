package turn

import (
	"net"
	"testing"

	"github.com/pion/stun/v4"
)

// FuzzParseRequest: whatever parseRequest accepts, pion's decoder accepts
// too and reads the same method, class, transaction ID and
// MESSAGE-INTEGRITY; it never panics.
func FuzzParseRequest(f *testing.F) {
	for _, b := range stunSeeds(f) {
		f.Add(b)
	}
	key := LongTermKey(testUser, testRealm, testPass)
	f.Add(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest),
		stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}, stun.NewUsername(testUser),
		stun.NewRealm(testRealm), stun.NewNonce("n"), stun.MessageIntegrity(key), stun.Fingerprint).Raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r stunRequest
		if !parseRequest(b, &r) {
			return
		}
		m := &stun.Message{Raw: append([]byte(nil), b...)}
		if err := m.Decode(); err != nil {
			t.Fatalf("parseRequest accepted %x, pion does not: %v", b, err)
		}
		if m.Type.Class != stun.ClassRequest || uint16(m.Type.Method) != r.method || m.TransactionID != r.tid {
			t.Fatalf("%x: method %#x tid %x, pion %v %x", b, r.method, r.tid, m.Type, m.TransactionID)
		}
		if m.Contains(stun.AttrMessageIntegrity) != (r.integrity != 0) {
			t.Fatalf("%x: MESSAGE-INTEGRITY at %d, pion says %v", b, r.integrity, m.Contains(stun.AttrMessageIntegrity))
		}
		if r.integrity != 0 && (r.integrity < stunHeaderLen || r.integrity+4 > len(b)) {
			t.Fatalf("%x: MESSAGE-INTEGRITY offset %d outside the message", b, r.integrity)
		}
		for _, a := range []struct {
			t   stun.AttrType
			got []byte
		}{{stun.AttrUsername, r.username}, {stun.AttrRealm, r.realm}, {stun.AttrNonce, r.nonce}, {stun.AttrLifetime, r.lifetime}} {
			want, err := m.Get(a.t)
			if (err == nil) != (a.got != nil) || string(want) != string(a.got) {
				t.Fatalf("%x: %s %x, pion %x (%v)", b, a.t, a.got, want, err)
			}
		}
		// The sockets' MESSAGE-INTEGRITY check agrees with pion's, and
		// leaves the message as it was.
		if r.integrity != 0 {
			in := append([]byte(nil), b...)
			ours := integrityOK(in, r.integrity, key)
			if string(in) != string(b) {
				t.Fatalf("%x: integrityOK changed the message", b)
			}
			if pions := stun.MessageIntegrity(key).Check(m) == nil; ours != pions {
				t.Fatalf("%x: integrity %v, pion %v", b, ours, pions)
			}
		}
	})
}

// TestStunType: the message types of RFC 8489 §5 and RFC 8656 §17.
func TestStunType(t *testing.T) {
	for _, tc := range []struct {
		method uint16
		class  uint8
		want   uint16
	}{
		{methodAllocate, classRequest, 0x0003},
		{methodAllocate, classErrorResponse, 0x0113},
		{0x004, 0b10, 0x0104}, // Refresh success
		{0x009, classErrorResponse, 0x0119},
		{0x001, 0b01, 0x0011},
	} {
		if got := stunType(tc.method, tc.class); got != tc.want {
			t.Errorf("stunType(%#x, %d) = %#04x, want %#04x", tc.method, tc.class, got, tc.want)
		}
		if got := stun.NewType(stun.Method(tc.method), stun.MessageClass(tc.class)).Value(); got != tc.want {
			t.Errorf("pion's type of (%#x, %d) = %#04x, want %#04x", tc.method, tc.class, got, tc.want)
		}
	}
}

// TestChallengeAllocatesNothing: the 401 to a first Allocate, the message
// every allocation starts with and spoofed floods consist of, costs no
// allocation.
func TestChallengeAllocatesNothing(t *testing.T) {
	s, err := New(testConfig(), Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	client := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 7), Port: 4000}
	req := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}, stun.Fingerprint).Raw
	replies := 0
	r := replyFunc(func([]byte) { replies++ })
	// Under the race detector sync.Pool drops buffers at random.
	if n := testing.AllocsPerRun(100, func() { s.screen(req, client, r) }); n != 0 && !raceEnabled {
		t.Errorf("the challenge allocates %v times", n)
	}
	if replies == 0 {
		t.Error("no challenge was sent")
	}
}
