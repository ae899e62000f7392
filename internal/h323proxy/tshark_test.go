package h323proxy

import (
	"bytes"
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestTsharkDissectsWhatPorticoSends writes every RAS message Portico
// sent outside (GCF, RCF with H.460.18, keep-alive RCF, ACF, LCF, SCI)
// and inside (the rewritten RRQ, ARQ, LRQ) into a pcap on the RAS port and has tshark dissect it: no malformed
// packet, every message recognised.
func TestTsharkDissectsWhatPorticoSends(t *testing.T) {
	bin := testpeer.Require(t, "tshark")[0]
	h := newHarness(t, nil)
	rcf, _ := h.register("henry", true)
	outID := bmp(rcf.EndpointIdentifier)
	e := endpoint("henry", true)
	e.KeepAlive, e.EndpointID = true, outID
	h.ep.send(h.ext, ras.RRQ(3, e))
	h.ep.expect(h225.RasMessage_RegistrationConfirm)
	id := bytes.Repeat([]byte{3}, 16)
	h.ep.send(h.ext, ras.ARQ(4, outID, nil, []h225.AliasAddress{ras.E164("8001")}, 1280, 1, id, id, false))
	from, m := h.gk.expect(h225.RasMessage_AdmissionRequest)
	h.gk.send(from, ras.ACF(m.AdmissionRequest, gkSignal, false))
	h.ep.expect(h225.RasMessage_AdmissionConfirm)
	h.ep.send(h.ext, ras.LRQ(5, []h225.AliasAddress{ras.E164("8001")}, h.ep.addr()))
	from, m = h.gk.expect(h225.RasMessage_LocationRequest)
	h.gk.send(from, ras.LCF(m.LocationRequest, gkSignal, from))
	h.ep.expect(h225.RasMessage_LocationConfirm)
	ep, _ := h.s.Outside("henry")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.s.Connect(ctx, ep, [16]byte(id))
	h.ep.expect(h225.RasMessage_ServiceControlIndication)

	file := filepath.Join(t.TempDir(), "outside.pcap")
	w, err := capture.NewPcap(file)
	if err != nil {
		t.Fatal(err)
	}
	src, dst := netip.MustParseAddrPort("198.51.100.1:1719"), netip.MustParseAddrPort("203.0.113.5:1719")
	h.ep.mu.Lock()
	for _, b := range h.ep.seen {
		if err := w.UDP(src, dst, b); err != nil {
			t.Fatal(err)
		}
	}
	n := len(h.ep.seen)
	h.ep.mu.Unlock()
	// And what it sent the inside gatekeeper.
	h.gk.mu.Lock()
	for _, b := range h.gk.seen {
		if err := w.UDP(dst, src, b); err != nil {
			t.Fatal(err)
		}
	}
	n += len(h.gk.seen)
	h.gk.mu.Unlock()
	w.Close()
	out, err := exec.Command(bin, "-r", file, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(text, "Malformed") || strings.Contains(text, "Expert Info (Error") {
		t.Errorf("tshark found malformed packets:\n%s", text)
	}
	for _, want := range []string{"gatekeeperConfirm", "registrationConfirm", "admissionConfirm", "locationConfirm", "serviceControlIndication",
		"registrationRequest", "admissionRequest", "locationRequest"} {
		if !strings.Contains(text, want) {
			t.Errorf("tshark did not dissect a %s", want)
		}
	}
	if got := strings.Count(text, "H.225.0 RAS"); got < n {
		t.Errorf("tshark dissected %d RAS messages, want %d", got, n)
	}
}
