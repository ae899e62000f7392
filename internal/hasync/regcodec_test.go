package hasync

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/sipedge"
)

func testRegistration() sipedge.RegistrationState {
	at := time.Unix(1_800_000_000, 123456789)
	return sipedge.RegistrationState{
		Info: sipedge.RegistrationInfo{AOR: "sip:alice@portico.test", Contact: "sip:alice@198.51.100.7:5060", Source: "198.51.100.7:5060",
			Transport: "udp", FlowToken: "tok", UserAgent: "phone/1.0", Registered: at, Refreshed: at.Add(time.Minute), Expires: at.Add(time.Hour)},
		Flow:    sipedge.Flow{Transport: "udp", Source: netip.MustParseAddrPort("198.51.100.7:5060")},
		Contact: "<sip:alice@198.51.100.7:5060>;+sip.instance=\"<urn:uuid:1>\"",
	}
}

func TestRegistrationRoundTrip(t *testing.T) {
	v6 := testRegistration()
	v6.Flow.Source = netip.MustParseAddrPort("[2001:db8::7]:5062")
	tests := []struct {
		name string
		st   sipedge.RegistrationState
	}{
		{"ipv4", testRegistration()},
		{"ipv6", v6},
		{"zero", sipedge.RegistrationState{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendRegistration([]byte("x"), &tt.st)[1:]
			got, err := parseRegistration(b)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.st
			for _, p := range []*time.Time{&got.Info.Registered, &got.Info.Refreshed, &got.Info.Expires,
				&want.Info.Registered, &want.Info.Refreshed, &want.Info.Expires} {
				if !p.IsZero() {
					*p = p.UTC()
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
			for i := range b {
				if _, err := parseRegistration(b[:i]); !errors.Is(err, ErrFrame) {
					t.Fatalf("prefix of %d bytes: %v, want ErrFrame", i, err)
				}
			}
		})
	}
}

func TestParseRegistrationRefuses(t *testing.T) {
	st := testRegistration()
	good := appendRegistration(nil, &st)
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"tag", mod(func(b []byte) []byte { b[0] = 2; return b })},
		{"field past end", mod(func(b []byte) []byte { b[1] = 0x7f; return b })},
		{"huge varint", []byte{regBinary, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"bad address", mod(func(b []byte) []byte { b[len(b)-7] = 3; return b })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseRegistration(tt.b); !errors.Is(err, ErrFrame) {
				t.Fatalf("got %v, want ErrFrame", err)
			}
		})
	}
}

func FuzzParseRegistration(f *testing.F) {
	st := testRegistration()
	f.Add(appendRegistration(nil, &st))
	f.Add(appendRegistration(nil, &sipedge.RegistrationState{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseRegistration(b)
		if err != nil {
			return
		}
		again, err := parseRegistration(appendRegistration(nil, &st))
		if err != nil || again.Key() != st.Key() || again.Flow != st.Flow || !again.Info.Expires.Equal(st.Info.Expires) {
			t.Fatalf("re-encoded registration differs: %+v %v", again, err)
		}
	})
}
