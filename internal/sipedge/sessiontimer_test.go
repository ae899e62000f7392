package sipedge

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestSessionInterval(t *testing.T) {
	for _, tc := range []struct {
		hdr, val string
		want     time.Duration
	}{
		{"Session-Expires", "1800;refresher=uac", 1800 * time.Second},
		{"Session-Expires", " 90 ", 90 * time.Second},
		{"x", "120;refresher=uas", 120 * time.Second},
		{"Session-Expires", "0", 0},
		{"Session-Expires", "-5", 0},
		{"Session-Expires", "soon", 0},
		{"Session-Expires", "99999999999", 0},
		{"Session-Expires", "4294967295", maxSessionInterval},
		{"Min-SE", "90", 0},
	} {
		res := sip.NewResponse(200, "OK")
		res.AppendHeader(sip.NewHeader(tc.hdr, tc.val))
		if got := sessionInterval(res); got != tc.want {
			t.Errorf("%s: %s gives %v, want %v", tc.hdr, tc.val, got, tc.want)
		}
	}
}

// TestSessionTimer: the session-timer negotiation passes through both
// dialogs (Session-Expires and Require in the 2xx, Min-SE in a 422); a
// re-INVITE refresh moves the expiry; a call nobody refreshes is ended by
// Portico with BYE both ways and disposition "session expired". The
// endpoints agree on a 4 s interval (RFC 4028's 90 s floor is theirs to
// enforce; Portico acts on what they agree).
func TestSessionTimer(t *testing.T) {
	k := startKamailio(t, 64)
	p := startPortico(t, Config{CallServers: kamailioServer(k)})
	ext := udpAddr(p.extUDP.String())
	carol, dave := registeredPair(t, p, k, "st")
	const se = "Session-Expires: 4;refresher=uac\r\nSupported: timer\r\n"
	seHdrs := []sip.Header{sip.NewHeader("Session-Expires", "4;refresher=uac"), sip.NewHeader("Require", "timer")}

	t.Run("422 carries Min-SE back", func(t *testing.T) {
		n := p.hist.count()
		done := make(chan *sip.Response, 1)
		go func() { done <- dave.invite(ext, "sip:stcarol@portico.test", dave.sdp(""), se) }()
		inv := carol.expect("INVITE")
		carol.replyWith(inv, 422, "Session Interval Too Small", "c422", "", sip.NewHeader("Min-SE", "90"))
		res := <-done
		dave.ackNon2xx(res, "sip:stcarol@portico.test")
		if res.StatusCode != 422 || res.GetHeader("Min-SE") == nil || res.GetHeader("Min-SE").Value() != "90" {
			t.Fatalf("caller got %d, Min-SE %v; want 422 with Min-SE: 90", res.StatusCode, res.GetHeader("Min-SE"))
		}
		p.hist.waitCalls(t, n+1)
	})

	t.Run("refreshed then expired", func(t *testing.T) {
		n := p.hist.count()
		done := make(chan *sip.Response, 1)
		go func() { done <- dave.invite(ext, "sip:stcarol@portico.test", dave.sdp(""), se) }()
		inv := carol.expect("INVITE")
		if v := inv.GetHeader("Session-Expires"); v == nil || v.Value() != "4;refresher=uac" {
			t.Fatalf("INVITE inside lost Session-Expires: %v", v)
		}
		t0 := time.Now()
		carol.replyWith(inv, 200, "OK", "stc1", carol.sdp(""), seHdrs...)
		res := <-done
		if res.StatusCode != 200 {
			t.Fatalf("INVITE answered %d", res.StatusCode)
		}
		if v := res.GetHeader("Session-Expires"); v == nil || v.Value() != "4;refresher=uac" || res.GetHeader("Require") == nil {
			t.Fatalf("2xx to the caller lacks the negotiated session timer:\n%s", res)
		}
		carol.expect("ACK")

		// The caller refreshes after 1 s: the expiry moves from t0+4 s to
		// about t0+5 s.
		time.Sleep(time.Second)
		go func() {
			dave.send(dave.dest, dave.request("INVITE", dave.target, dave.to+";tag="+dave.rtag, se, dave.sdp("")))
			r := dave.final("INVITE")
			if r.StatusCode == 200 {
				dave.send(dave.dest, dave.ackText(r.CSeq().SeqNo))
			}
			done <- r
		}()
		re := carol.expect("INVITE")
		if re.GetHeader("Session-Expires") == nil {
			t.Errorf("refresh re-INVITE lost Session-Expires:\n%s", re)
		}
		carol.replyWith(re, 200, "OK", "stc1", carol.sdp(""), seHdrs...)
		if r := <-done; r.StatusCode != 200 || r.GetHeader("Session-Expires") == nil {
			t.Fatalf("refresh answered %d:\n%s", r.StatusCode, r)
		}
		carol.expect("ACK")

		// Nobody refreshes again: Portico sends BYE both ways.
		byeIn := carol.expect("BYE")
		carol.reply(byeIn, 200, "OK", "", "")
		byeOut := dave.expect("BYE")
		dave.reply(byeOut, 200, "OK", "", "")
		// Without the refresh the BYE would leave at t0+4 s.
		if at := time.Since(t0); at < 4500*time.Millisecond {
			t.Errorf("BYE %v after the answer: the refresh did not move the expiry", at)
		}
		rec := p.hist.waitCalls(t, n+1)[n]
		if rec.Disposition != dispSessionExpired || rec.EndedBy != endedByPortico {
			t.Errorf("call record = %+v, want disposition %q by portico", rec, dispSessionExpired)
		}
		if strings.Contains(byeOut.String(), insideIP) {
			t.Errorf("BYE sent outside names an inside address:\n%s", byeOut)
		}
	})
	assertNoInside(t, p.tap)
}

// registeredPair registers prefix+"carol" inside, straight to Kamailio, and
// prefix+"dave" outside, through Portico.
func registeredPair(t *testing.T, p *portico, k *kamailio, prefix string) (carol, dave *rawUA) {
	t.Helper()
	carol = newRawUA(t, insideIP, prefix+"carol")
	if res := carol.register(udpAddr(k.addr.String()), 300); res.StatusCode != 200 {
		t.Fatalf("%scarol inside register: %d", prefix, res.StatusCode)
	}
	dave = newRawUA(t, outsideIP, prefix+"dave")
	if res := dave.register(udpAddr(p.extUDP.String()), 3600); res.StatusCode != 200 {
		t.Fatalf("%sdave register: %d %s", prefix, res.StatusCode, res.Reason)
	}
	return carol, dave
}
