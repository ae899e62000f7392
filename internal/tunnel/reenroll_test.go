package tunnel

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventLog keeps the events an end reported through Deps.OnEvent.
type eventLog struct {
	mu  sync.Mutex
	got []string
}

func (l *eventLog) add(sev, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, sev+" "+msg)
}

func (l *eventLog) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.got, func(s string) bool { return strings.Contains(s, sub) })
}

// TestReenrollAfterMissedRotation: the server rotates its certificate
// while one of its enrolled clients is down. That client comes back, is
// refused by its own stale pin and says so (Stats.Problem, a warning, an
// event, the metric) instead of retrying silently; it keeps its
// identity, enrolls again with a new token (Enroll, as `portico tunnel
// enroll` does) and carries the flows. A client whose configuration holds
// a token naming the new certificate enrolls again by itself.
func TestReenrollAfterMissedRotation(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", &MemState{})
	// The client that stays connected carries the rotation.
	runEnrolled(t, s, Config{Priority: 50, Services: []Service{{Name: "rtp", Proto: "udp", Target: udpTag(t, "stayed")}}})
	uc, err := net.Dial("udp", s.ServiceAddr("rtp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	eventually(t, "the connected client carries the flow", func() bool { return answers(uc) == "stayed" })

	// Two clients enrolled before the rotation, down during it.
	away := func(tag, token string, st StateStore) (*Client, *eventLog, *logBuf) {
		ev, lb := &eventLog{}, &logBuf{}
		c, err := NewClient(Config{Server: s.addr, Priority: 200, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, EnrollmentToken: token,
			Services: []Service{{Name: "rtp", Proto: "udp", Target: udpTag(t, tag)}}},
			Deps{State: st, OnEvent: ev.add, Logger: slog.New(slog.NewTextHandler(lb, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return c, ev, lb
	}
	enroll := func(c *Client) {
		tok, _, err := s.CreateToken()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Enroll(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	manual, mev, mlog := away("manual", "", &MemState{})
	enroll(manual)
	autoState := &MemState{}
	auto0, _, _ := away("auto", "", autoState)
	enroll(auto0)
	manualFP, autoFP := manual.Fingerprint(), auto0.Fingerprint()

	oldTok, _, err := s.CreateToken()
	if err != nil {
		t.Fatal(err)
	}
	newFP, err := s.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	// The manual client comes back and is refused by its stale pin.
	runClient(t, manual)
	eventually(t, "the stale client reports the changed certificate", func() bool {
		st := manual.Stats()
		return st.Problem == ProblemServerChanged && st.PresentedFingerprint == newFP && st.State == "down"
	})
	if !strings.Contains(mlog.String(), "server certificate changed: re-enroll") || !mev.has("warning tunnel server certificate changed: re-enroll") {
		t.Fatalf("no warning or event: log %q, events %v", mlog.String(), mev.got)
	}
	if answers(uc) != "stayed" {
		t.Fatal("the flow left the connected client")
	}
	// A token issued before the rotation names the old certificate: it is
	// refused as such before anything is sent.
	if err := manual.Enroll(context.Background(), oldTok); !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), "the server presents "+newFP) {
		t.Fatalf("enrolling with a token for the old certificate: %v", err)
	}
	// An administrator issues a token; the client enrolls again with its
	// own identity and, preferred, carries the flow.
	enroll(manual)
	eventually(t, "the enrolled-again client carries the flow", func() bool { return answers(uc) == "manual" })
	if st := manual.Stats(); st.Problem != "" || st.State != "up" || manual.Fingerprint() != manualFP {
		t.Fatalf("after enrolling again: %+v, fingerprint %s (was %s)", st, manual.Fingerprint(), manualFP)
	}
	if !mev.has("info tunnel client enrolled again") {
		t.Fatalf("events %v", mev.got)
	}

	// The other client's configuration holds a token naming the new
	// certificate: it enrolls again by itself.
	tok, _, err := s.CreateToken()
	if err != nil || !strings.HasSuffix(tok, newFP) {
		t.Fatalf("token %q: %v", tok, err)
	}
	auto, aev, _ := away("auto", tok, autoState)
	runClient(t, auto)
	eventually(t, "the client with a configured token is up", func() bool { return auto.Stats().State == "up" })
	if auto.Fingerprint() != autoFP || auto.Stats().Problem != "" || !aev.has(ProblemServerChanged) {
		t.Fatalf("auto client: fingerprint %s (was %s), %+v, events %v", auto.Fingerprint(), autoFP, auto.Stats(), aev.got)
	}
	if p := s.Peers(); !slices.Contains(p, manualFP) || !slices.Contains(p, autoFP) || len(p) != 3 {
		t.Fatalf("server pins %v", p)
	}
}
