package callsig

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestTsharkDissectsWhatPorticoSent runs a call and has tshark's TPKT,
// Q.931, H.225.0 and H.245 dissectors read every message Portico sent to
// either side: nothing malformed, and every media address in what went
// outside is the relay's outside address.
func TestTsharkDissectsWhatPorticoSent(t *testing.T) {
	testpeer.Require(t, "tshark")
	p := startPortico(t, Config{})
	r := runCall(t, p)
	r.caller.send(q931.ReleaseComplete, false, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, newCallID(), netip.AddrPort{}, nil), withCause(CauseNormal))
	r.callee.expect(q931.ReleaseComplete)
	p.hist.next(t)

	path := filepath.Join(t.TempDir(), "portico.pcap")
	if d := os.Getenv("H323_PCAP"); d != "" {
		path = d
	}
	w, err := capture.NewPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	// Fixed ports choose the dissectors: 1720 is call signalling (TPKT,
	// Q.931, H.225.0), 11000 the separate H.245 connection (-d).
	out := netip.AddrPortFrom(porticoOut, 1720)
	in := netip.AddrPortFrom(porticoIn, 40000)
	caller := netip.AddrPortFrom(outsideEP, 40001)
	callee := netip.AddrPortFrom(insideEP, 1720)
	frames := 0
	for _, b := range r.caller.got {
		w.TCP(out, caller, h245proxy.AppendFrame(nil, b))
		frames++
	}
	for _, b := range r.callee.got {
		w.TCP(in, callee, h245proxy.AppendFrame(nil, b))
		frames++
	}
	for _, b := range r.h245Caller {
		w.TCP(netip.AddrPortFrom(porticoOut, 11000), caller, h245proxy.AppendFrame(nil, b))
		frames++
	}
	w.Close()
	args := []string{"-r", path, "-d", "tcp.port==11000,h245"}
	v, err := exec.Command("tshark", append(args, "-V")...).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, v)
	}
	text := string(v)
	if strings.Contains(text, "Malformed") || strings.Contains(text, "[Expert Info (Error") {
		t.Fatalf("tshark reports errors:\n%s", text)
	}
	for _, want := range []string{"Q.931", "H.225.0", "H.245", "openLogicalChannel", "openLogicalChannelAck", "fastStart", "h245Address", "sourceCallSignalAddress"} {
		if !strings.Contains(text, want) {
			t.Errorf("dissection lacks %q", want)
		}
	}
	f, err := exec.Command("tshark", append(args, "-T", "fields", "-e", "ip.dst", "-e", "q931.message_type", "-e", "h245.ip4_network", "-e", "h225.ip", "-e", "h225.h245Ip")...).Output()
	if err != nil {
		t.Fatalf("tshark fields: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(f)), "\n")
	if len(lines) != frames {
		t.Fatalf("%d frames dissected, %d written", len(lines), frames)
	}
	media := 0
	for _, l := range lines {
		cols := strings.Split(l, "\t")
		if cols[0] != outsideEP.String() {
			continue
		}
		for _, c := range cols[2:] {
			for _, a := range strings.Split(c, ",") {
				if a == "" {
					continue
				}
				media++
				if a != porticoOut.String() {
					t.Errorf("outside frame %q names %s", l, a)
				}
			}
		}
	}
	if media < 4 {
		t.Fatalf("only %d addresses seen in outside frames:\n%s", media, f)
	}
}
