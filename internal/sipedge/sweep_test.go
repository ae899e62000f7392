package sipedge

import (
	"slices"
	"testing"
	"time"
)

// TestSweepExpiresDueOnly: the sweep removes exactly the bindings whose
// expiry has passed, including after a refresh moved one later and a
// removal took one out.
func TestSweepExpiresDueOnly(t *testing.T) {
	s := unservedServer(t)
	t0 := time.Now()
	r := s.regs
	put := func(user string, secs int) {
		info := RegistrationInfo{AOR: "sip:" + user + "@portico.test", Contact: "sip:" + user + "@192.0.2.1", Expires: t0.Add(time.Duration(secs) * time.Second)}
		r.mu.Lock()
		r.put(bindingKey(info.AOR, info.Contact), &binding{RegistrationInfo: info})
		r.mu.Unlock()
	}
	left := func() []string {
		var out []string
		for _, b := range s.Registrations() {
			out = append(out, b.AOR)
		}
		return out
	}
	for i, u := range []string{"a", "b", "c", "d", "e"} {
		put(u, 10*(i+1)) // a 10 s, b 20 s ... e 50 s
	}
	put("a", 45) // refreshed: now after d
	r.mu.Lock()
	r.del(bindingKey("sip:c@portico.test", "sip:c@192.0.2.1"))
	r.mu.Unlock()
	for _, step := range []struct {
		at   int
		want []string
	}{
		{5, []string{"sip:a@portico.test", "sip:b@portico.test", "sip:d@portico.test", "sip:e@portico.test"}},
		{21, []string{"sip:a@portico.test", "sip:d@portico.test", "sip:e@portico.test"}},
		{41, []string{"sip:a@portico.test", "sip:e@portico.test"}},
		{46, []string{"sip:e@portico.test"}},
		{51, nil},
	} {
		r.sweep(t0.Add(time.Duration(step.at) * time.Second))
		if got := left(); !slices.Equal(got, step.want) {
			t.Errorf("after %d s: %v, want %v", step.at, got, step.want)
		}
	}
	if len(r.due) != 0 || len(r.byAOR) != 0 {
		t.Errorf("left %d in the expiry heap, %d AORs", len(r.due), len(r.byAOR))
	}
}

// unservedServer is a server that is built but never serves: its
// registrar and call table are used directly.
func unservedServer(t testing.TB) *Server {
	s, err := New(Config{Listeners: []Listener{{Interface: External, Transport: "udp", Address: "127.0.0.2:5060"},
		{Interface: Internal, Transport: "udp", Address: "127.0.0.3:5060"}}, CallServers: []CallServer{{Address: "127.0.0.4:5060"}}},
		Deps{Media: nopMedia{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
