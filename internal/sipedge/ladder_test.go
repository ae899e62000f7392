package sipedge

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/ladder"
	"github.com/portico-edge/portico/internal/testpeer"
)

// sdesKey and digestResponse are the secrets ladder_call.xml sends.
const (
	sdesKey        = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
	digestResponse = "d41d8cd98f00b204e9800998ecf8427e"
)

// TestLadderCapture: a guest call from sipp through Portico to Kamailio and
// an inside sipp UAS is kept whole in the ladder store: both dialogs,
// INVITE/100/180/200/ACK/BYE/200 each in order, the digest response and
// the SDES key masked; the SVG parses as XML with one arrow per message;
// tshark reads the synthesised pcap as that many SIP messages, none
// malformed. Then many calls keep the store within its bounds.
func TestLadderCapture(t *testing.T) {
	testpeer.Require(t, "sipp", "kamailio", "tshark")
	uasDir := t.TempDir()
	port := freePort(t)
	startSipp(t, uasDir, "-sn", "uas", "-i", insideIP, "-p", port, "-mp", freePort(t), "-rtp_echo")
	time.Sleep(200 * time.Millisecond)
	mcu := insideIP + ":" + port
	defer func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(uasDir, "*_messages.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("UAS %s:\n%s", f, b)
			}
		}
	}()
	k := startKamailio(t, 64, `MCU_URI="sip:`+mcu+`"`)
	const maxCalls = 6
	st := ladder.New(ladder.Config{MaxCalls: maxCalls})
	p := startPortico(t, Config{CallServers: kamailioServer(k), Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}}},
		func(s *Server) { s.deps.Capture = st })
	dir := sippDir(t)

	r := startSipp(t, dir, "-sf", "ladder_call.xml", "-s", "1001", "-i", outsideIP, "-p", freePort(t), "-m", "1", p.extUDP.String())
	r.wait(t, "ladder_call")
	id := p.hist.waitCalls(t, 1)[0].ID
	// Portico's BYE inside may leave after the call is recorded.
	var l ladder.Ladder
	var ok bool
	waitUntil(t, func() bool {
		l, ok = st.Ladder(id)
		return ok && hasInsideBYE(l)
	})
	if !ok {
		t.Fatalf("no ladder for call %s; store holds %v", id, fmt.Sprint(st.Len()))
	}

	// Each leg's messages in order, retransmissions folded.
	legs := map[string][]string{}
	for _, m := range l.Messages {
		s := m.Direction + " " + strings.Fields(m.Summary)[0]
		if strings.HasPrefix(m.Summary, "200") {
			s += " " + m.Method
		}
		if seq := legs[m.Interface]; len(seq) == 0 || seq[len(seq)-1] != s {
			legs[m.Interface] = append(seq, s)
		}
		if m.From == m.To || m.From < 0 || m.To > 3 {
			t.Errorf("message %d between parties %d and %d", m.Index, m.From, m.To)
		}
	}
	want := map[string]string{
		External: "in INVITE,out 100,out 180,out 200 INVITE,in ACK,in BYE,out 200 BYE",
		// sipp's UAS sends every response of a call to where the INVITE
		// came from (Kamailio, which drops the 200 for the BYE Portico
		// sent it directly): the inside leg ends with Portico's BYE.
		Internal: "out INVITE,in 100,in 180,in 200 INVITE,out ACK,out BYE",
	}
	for iface, w := range want {
		if got := strings.Join(legs[iface], ","); got != w {
			t.Errorf("%s leg:\n got %s\nwant %s", iface, got, w)
			for _, m := range l.Messages {
				if m.Interface == iface {
					t.Logf("%s %s %s -> %s\n%s", m.Time.Format("15:04:05.000000"), m.Direction, m.Local, m.Remote, m.Text)
				}
			}
		}
	}
	for _, pt := range l.Parties {
		if pt.Address == "" {
			t.Errorf("party %q has no address: %+v", pt.Name, l.Parties)
		}
	}

	// Secrets masked byte for byte, everywhere.
	var text strings.Builder
	for _, m := range l.Messages {
		text.WriteString(m.Text)
	}
	all := text.String()
	for _, secret := range []string{sdesKey, digestResponse, "N0nceV4lue", "CN0nce"} {
		if strings.Contains(all, secret) {
			t.Errorf("%q kept in clear", secret)
		}
	}
	if !strings.Contains(all, `response="`+strings.Repeat("*", len(digestResponse))+`"`) || !strings.Contains(all, "inline:"+strings.Repeat("X", len(sdesKey))+"|2^20|1:4") {
		t.Errorf("masked forms missing from:\n%s", l.Messages[0].Text)
	}

	// SVG: well-formed, one arrow and one #msg-N link per message.
	var svg bytes.Buffer
	if err := ladder.SVG(&svg, l); err != nil {
		t.Fatal(err)
	}
	arrows, links := svgArrows(t, svg.Bytes())
	if arrows != len(l.Messages) || len(links) != len(l.Messages) || links[len(links)-1] != "#msg-"+strconv.Itoa(len(l.Messages)-1) {
		t.Errorf("SVG has %d arrows, links %v, for %d messages", arrows, links, len(l.Messages))
	}

	// pcap: tshark dissects every packet as SIP and finds none malformed.
	pcap := filepath.Join(t.TempDir(), "call.pcap")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if err := ladder.Pcap(f, l); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sipN, malformed, methods := tsharkSIP(t, pcap)
	if sipN != len(l.Messages) || malformed != 0 {
		t.Errorf("tshark: %d SIP packets (want %d), %d malformed", sipN, len(l.Messages), malformed)
	}
	if methods["INVITE"] != 2 || methods["BYE"] < 2 || methods["ACK"] != 2 {
		t.Errorf("tshark request methods %v", methods)
	}

	// Many calls: the store keeps the newest maxCalls.
	const n = 15
	r = startSipp(t, dir, "-sf", "ladder_call.xml", "-s", "1001", "-i", outsideIP, "-p", freePort(t), "-m", strconv.Itoa(n), "-l", "3", p.extUDP.String())
	r.wait(t, "ladder_call x15")
	calls := p.hist.waitCalls(t, n+1)
	if c, pending, _ := st.Len(); c > maxCalls || pending != 0 {
		t.Errorf("store holds %d calls (bound %d), %d pending", c, maxCalls, pending)
	}
	if _, ok := st.Ladder(id); ok {
		t.Error("the oldest call was not evicted")
	}
	last := calls[len(calls)-1].ID
	waitUntil(t, func() bool { l, ok = st.Ladder(last); return ok && hasInsideBYE(l) })
	if !ok || len(l.Messages) < 13 {
		t.Errorf("newest call %s: kept %v with %d messages", last, ok, len(l.Messages))
	}
	if ev := st.Stats().Evicted.Load(); ev < n+1-maxCalls {
		t.Errorf("%d evictions, want at least %d", ev, n+1-maxCalls)
	}
}

func hasInsideBYE(l ladder.Ladder) bool {
	for _, m := range l.Messages {
		if m.Interface == Internal && m.Direction == "out" && strings.HasPrefix(m.Summary, "BYE ") {
			return true
		}
	}
	return false
}

// waitUntil polls cond for up to 10 s (an event to wait for, not a
// bound on how fast it comes).
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500 && !cond(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// svgArrows parses an SVG document and returns its arrows and links.
func svgArrows(t *testing.T, b []byte) (arrows int, links []string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				switch {
				case se.Name.Local == "line" && a.Name.Local == "class" && a.Value == "arrow":
					arrows++
				case se.Name.Local == "a" && a.Name.Local == "href" && a.Name.Space == "":
					links = append(links, a.Value)
				}
			}
		}
	}
}

// tsharkSIP reads a capture with SIP's heuristics (the test ports are not
// 5060) and counts SIP packets, malformed packets and request methods.
func tsharkSIP(t *testing.T, file string) (sip, malformed int, methods map[string]int) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-o", "udp.try_heuristic_first:TRUE", "-o", "tcp.try_heuristic_first:TRUE",
		"--enable-heuristic", "sip_udp", "--enable-heuristic", "sip_tcp",
		"-T", "fields", "-e", "frame.protocols", "-e", "sip.Method", "-e", "_ws.malformed").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	methods = map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if strings.Contains(f[0], ":sip") {
			sip++
		}
		if strings.Contains(f[0], "malformed") || (len(f) > 2 && f[2] != "") {
			malformed++
		}
		if len(f) > 1 && f[1] != "" {
			methods[f[1]]++
		}
	}
	return sip, malformed, methods
}

// TestLadderCaptureStreams: messages on accepted TCP and WebSocket
// connections are framed out of the streams and kept like datagrams.
func TestLadderCaptureStreams(t *testing.T) {
	testpeer.Require(t, "sipp", "kamailio")
	mcu := startSippUAS(t)
	k := startKamailio(t, 64, `MCU_URI="sip:`+mcu+`"`)
	st := ladder.New(ladder.Config{})
	p := startPortico(t, Config{CallServers: kamailioServer(k), Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}}},
		func(s *Server) { s.deps.Capture = st })

	t.Run("tcp", func(t *testing.T) {
		r := startSipp(t, sippDir(t), "-sf", "ladder_call.xml", "-s", "1002", "-t", "t1", "-i", outsideIP, "-p", freePort(t), "-m", "1", p.extTCP.String())
		r.wait(t, "ladder_call over tcp")
		id := p.hist.waitCalls(t, 1)[0].ID
		var l ladder.Ladder
		waitUntil(t, func() bool { l, _ = st.Ladder(id); return hasInsideBYE(l) })
		if got := legSummary(l, External); got != "tcp in INVITE,tcp out 100,tcp out 180,tcp out 200,tcp in ACK,tcp in BYE,tcp out 200" {
			t.Errorf("outside leg over TCP: %s", got)
		}
		if strings.Contains(l.Messages[0].Text, sdesKey) {
			t.Error("SDES key kept")
		}
	})

	t.Run("ws", func(t *testing.T) {
		e := newWSEndpoint(t, "df7jal23ls0d.invalid", nil)
		e.register(t, "wendy", "ws", p.extWS.String())
		aor := "sip:wendy@portico.test"
		carol := newRawUA(t, insideIP, "carol")
		r := carol.invite(udpAddr(k.addr.String()), aor, carol.sdp(""), "")
		if r.StatusCode != 603 {
			t.Fatalf("inside call to the ws user: %d, want 603", r.StatusCode)
		}
		carol.ackNon2xx(r, aor)
		calls := p.hist.waitCalls(t, 2)
		id := calls[len(calls)-1].ID
		var l ladder.Ladder
		waitUntil(t, func() bool { l, _ = st.Ladder(id); return strings.Contains(legSummary(l, External), "out ACK") })
		// (the sipgo endpoint then answers the ACK with 405: it has no handler for it)
		if got := legSummary(l, External); !strings.HasPrefix(got, "ws out INVITE,ws in 603,ws out ACK") {
			t.Errorf("outside leg over WebSocket: %s", got)
		}
		if got := legSummary(l, Internal); !strings.HasPrefix(got, "udp in INVITE,udp out 100") || !strings.Contains(got, "udp out 603") {
			t.Errorf("inside leg: %s", got)
		}
	})

	t.Run("tls", func(t *testing.T) {
		conn, err := tls.Dial("tcp", p.extTLS.String(), &tls.Config{RootCAs: p.ca.Pool(), ServerName: "portico.test", MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		streamFlow(t, p, k, conn, "tls", "erin", 3) // REGISTER, then a call from inside answered 486
		id := p.hist.waitCalls(t, 3)[2].ID
		var l ladder.Ladder
		waitUntil(t, func() bool { l, _ = st.Ladder(id); return strings.Contains(legSummary(l, External), "out ACK") })
		if got := legSummary(l, External); got != "tls out INVITE,tls in 486,tls out ACK" {
			t.Errorf("outside leg over TLS: %s", got)
		}
	})
}

// legSummary lists one leg's messages as "transport direction first-word",
// retransmissions folded.
func legSummary(l ladder.Ladder, iface string) string {
	var seq []string
	for _, m := range l.Messages {
		if m.Interface != iface {
			continue
		}
		s := m.Transport + " " + m.Direction + " " + strings.Fields(m.Summary)[0]
		if len(seq) == 0 || seq[len(seq)-1] != s {
			seq = append(seq, s)
		}
	}
	return strings.Join(seq, ",")
}

// TestCaptureBoundsValidate: a negative bound is named at its field, with
// the section's other errors.
func TestCaptureBoundsValidate(t *testing.T) {
	s := Section{Enabled: true,
		Listeners:   []Listener{{Interface: External, Transport: "udp", Address: "127.0.0.1:5060"}, {Interface: Internal, Transport: "udp", Address: "127.0.0.1:5070"}},
		CallServers: []CallServer{{Address: "127.0.0.1:5080"}},
		Capture:     CaptureBounds{MaxCalls: 10, MaxBytes: 1 << 20},
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("good bounds refused: %v", err)
	}
	s.Capture.MaxCallBytes = -1
	s.Listeners[1].Interface = "dmz"
	es, ok := field.As(s.Validate())
	if !ok || len(es) < 2 || es[0].Path != "sip.listeners[1].interface" || es[len(es)-1].Path != "sip.capture.max_call_bytes" {
		t.Errorf("Validate = %v", es)
	}
}
