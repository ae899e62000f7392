package h225_test

import (
	"bytes"
	"errors"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
	"github.com/portico-edge/portico/internal/h323/h323test/sample"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/testpeer"
)

var relayIP = netip.MustParseAddr("203.0.113.5")

func addrs(ui *h225.H323UserInformation) []string {
	var out []string
	h225.VisitAddresses(ui, func(t *h225.TransportAddress) {
		ap, err := ras.AddrPort(t)
		if err != nil {
			out = append(out, "?")
			return
		}
		out = append(out, ap.String())
	})
	return out
}

func TestVisitAddresses(t *testing.T) {
	tr := func(s string) *h225.TransportAddress {
		x := ras.Transport(netip.MustParseAddrPort(s))
		return &x
	}
	setup := sample.SetupUUIE()
	setup.H323UuPdu.H323MessageBody.Setup.H245Address = tr("10.1.1.1:1300")
	setup.H323UuPdu.H323MessageBody.Setup.SourceCallSignalAddress = tr("10.1.1.1:1720")
	setup.H323UuPdu.H323MessageBody.Setup.SourceAddress = append(setup.H323UuPdu.H323MessageBody.Setup.SourceAddress,
		h225.AliasAddress{Choice: h225.AliasAddress_TransportID, TransportID: tr("10.1.1.1:1721")})
	facility := h225.StartH245Facility([16]byte{1}, nil, *tr("10.2.2.2:1400"))
	facility.H323UuPdu.H323MessageBody.Facility.AlternativeAddress = tr("10.2.2.2:1720")
	connect := sample.ConnectUUIE()
	connect.H323UuPdu.H323MessageBody.Connect.H245Address = tr("10.3.3.3:1500")
	for _, tc := range []struct {
		name string
		ui   *h225.H323UserInformation
		want []string
	}{
		{"setup", setup, []string{"10.1.1.1:1300", "10.1.1.1:1720", sample.CalleeCall.String(), "10.1.1.1:1721"}},
		{"facility startH245", facility, []string{"10.2.2.2:1400", "10.2.2.2:1720"}},
		{"connect", connect, []string{"10.3.3.3:1500"}},
		{"empty facility", h225.EmptyFacility([16]byte{2}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := addrs(tc.ui)
			if len(got) != len(tc.want) {
				t.Fatalf("visited %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("visited %v, want %v", got, tc.want)
				}
			}
			// Rewrite everything to the relay; the wire must carry it.
			h225.VisitAddresses(tc.ui, func(a *h225.TransportAddress) {
				ap, _ := ras.AddrPort(a)
				*a = ras.Transport(netip.AddrPortFrom(relayIP, ap.Port()))
			})
			b, err := tc.ui.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var back h225.H323UserInformation
			if err := back.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			for _, s := range addrs(&back) {
				if netip.MustParseAddrPort(s).Addr() != relayIP {
					t.Fatalf("after rewrite %v still has %s", addrs(&back), s)
				}
			}
		})
	}
}

// captured returns the H323-UserInformation encodings of the reference
// captures (when present) and of the samples.
func captured(t testing.TB) [][]byte {
	var out [][]byte
	s, _ := sample.SetupUUIE().Marshal()
	out = append(out, s)
	if capture.RefDir() == "" {
		return out
	}
	files := capture.Captures(t)
	for _, f := range []string{"gk-h323plus.pcapng", "gk-ooh323c.pcapng", "gk-h323plus-notunnel.pcapng"} {
		files = append(files, filepath.Join(capture.RefDir(), "captures", "gnugk", f))
	}
	for _, file := range files {
		for _, p := range capture.TPKTPackets(t, file, "q931 && tcp.len>0 && !tcp.analysis.retransmission") {
			if p.Partial || p.Malformed {
				continue
			}
			m, err := q931.Parse(p.Payload)
			if err != nil {
				continue
			}
			if uu, err := m.UserUser(); err == nil {
				out = append(out, uu)
			}
		}
	}
	return out
}

// TestEditFastStartCaptures edits the fastStart and h245Control elements
// of every captured message: an edit that changes nothing reproduces the
// bytes exactly, and a rewrite to the relay address reaches every media
// address of every element.
func TestEditFastStartCaptures(t *testing.T) {
	var olcs, tunnelled, changed int
	for i, uu := range captured(t) {
		var ui h225.H323UserInformation
		if err := ui.Unmarshal(uu); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if err := h225.EditFastStart(&ui, func(int, *h245.OpenLogicalChannel) error { olcs++; return nil }); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if err := h225.EditH245Control(&ui, func(int, *h245.MultimediaSystemControlMessage) error { tunnelled++; return nil }); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		out, err := ui.Marshal()
		if err != nil || !bytes.Equal(out, uu) {
			t.Fatalf("message %d: identity edit changed the message: %v", i, err)
		}
		rewrite := func(u *h245.UnicastAddress) {
			ap, _ := h245.UnicastAddrPort(u)
			*u = h245.NewUnicastAddress(netip.AddrPortFrom(relayIP, ap.Port()))
			changed++
		}
		if err := h225.EditFastStart(&ui, func(_ int, olc *h245.OpenLogicalChannel) error { h245.VisitAddresses(olc, rewrite); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := h225.EditH245Control(&ui, func(_ int, m *h245.MultimediaSystemControlMessage) error {
			h245.VisitMessageAddresses(m, rewrite)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		out, err = ui.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var back h225.H323UserInformation
		if err := back.Unmarshal(out); err != nil {
			t.Fatal(err)
		}
		check := func(u *h245.UnicastAddress) {
			if ap, _ := h245.UnicastAddrPort(u); ap.Addr() != relayIP {
				t.Errorf("message %d: %v not rewritten", i, ap)
			}
		}
		_ = h225.EditFastStart(&back, func(_ int, olc *h245.OpenLogicalChannel) error { h245.VisitAddresses(olc, check); return nil })
		_ = h225.EditH245Control(&back, func(_ int, m *h245.MultimediaSystemControlMessage) error {
			h245.VisitMessageAddresses(m, check)
			return nil
		})
	}
	if olcs == 0 || changed == 0 {
		t.Fatalf("nothing edited: %d fastStart OLCs, %d tunnelled, %d addresses", olcs, tunnelled, changed)
	}
	t.Logf("%d fastStart OLCs, %d tunnelled H.245 messages, %d media addresses rewritten", olcs, tunnelled, changed)
}

func TestEditErrors(t *testing.T) {
	ui := sample.SetupUUIE()
	stop := errors.New("stop")
	if err := h225.EditFastStart(ui, func(int, *h245.OpenLogicalChannel) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error not returned: %v", err)
	}
	ui.H323UuPdu.H323MessageBody.Setup.FastStart = append(ui.H323UuPdu.H323MessageBody.Setup.FastStart, []byte{0xff})
	if err := h225.EditFastStart(ui, func(int, *h245.OpenLogicalChannel) error { return nil }); err == nil {
		t.Fatal("undecodable fastStart element accepted")
	}
	ui.H323UuPdu.H245Control, ui.H323UuPdu.HasH245Control = [][]byte{{0xff}}, true
	if err := h225.EditH245Control(ui, func(int, *h245.MultimediaSystemControlMessage) error { return nil }); err == nil {
		t.Fatal("undecodable h245Control element accepted")
	}
}

// TestBuilders encodes the Facility builders and the tunnel, decodes them
// and checks what a peer reads.
func TestBuilders(t *testing.T) {
	callID := [16]byte{9, 8, 7}
	h245Addr := ras.Transport(netip.MustParseAddrPort("192.0.2.1:1300"))
	tun, err := h225.Tunnel(h245.NewRoundTripDelayRequest(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		ui     *h225.H323UserInformation
		reason int
		h245   string
		ctl    int
	}{
		{"startH245", h225.StartH245Facility(callID, sample.ConferenceID, h245Addr), h225.FacilityReason_StartH245, "192.0.2.1:1300", 0},
		{"keep-alive", h225.EmptyFacility(callID), h225.FacilityReason_UndefinedReason, "", 0},
		{"tunnel", tun, -1, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.ui.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var m h225.H323UserInformation
			if err := m.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			body := m.H323UuPdu.H323MessageBody
			if tc.reason < 0 {
				if body.Choice != h225.H323UUPDUH323MessageBody_Empty || !m.H323UuPdu.H245Tunnelling || len(m.H323UuPdu.H245Control) != tc.ctl {
					t.Fatalf("tunnel decoded as %+v", m.H323UuPdu)
				}
				return
			}
			fa := body.Facility
			if fa == nil || fa.Reason.Choice != tc.reason || !bytes.Equal(fa.CallIdentifier.Guid, callID[:]) {
				t.Fatalf("decoded %+v", fa)
			}
			got := ""
			if fa.H245Address != nil {
				ap, _ := ras.AddrPort(fa.H245Address)
				got = ap.String()
			}
			if got != tc.h245 {
				t.Fatalf("h245Address %q, want %q", got, tc.h245)
			}
		})
	}
}

func BenchmarkEditFastStart(b *testing.B) {
	uu, err := sample.SetupUUIE().Marshal()
	if err != nil {
		b.Fatal(err)
	}
	rewrite := func(u *h245.UnicastAddress) {
		if ap, ok := h245.UnicastAddrPort(u); ok {
			*u = h245.NewUnicastAddress(netip.AddrPortFrom(relayIP, ap.Port()))
		}
	}
	edit := func(_ int, olc *h245.OpenLogicalChannel) error { h245.VisitAddresses(olc, rewrite); return nil }
	b.ReportAllocs()
	for b.Loop() {
		var ui h225.H323UserInformation
		if err := ui.Unmarshal(uu); err != nil {
			b.Fatal(err)
		}
		if err := h225.EditFastStart(&ui, edit); err != nil {
			b.Fatal(err)
		}
		if _, err := ui.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzEditFastStart(f *testing.F) {
	for _, uu := range captured(f) {
		f.Add(uu)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ui h225.H323UserInformation
		if ui.Unmarshal(b) != nil {
			return
		}
		rewrite := func(u *h245.UnicastAddress) {
			if ap, ok := h245.UnicastAddrPort(u); ok {
				*u = h245.NewUnicastAddress(netip.AddrPortFrom(relayIP, ap.Port()))
			}
		}
		fsErr := h225.EditFastStart(&ui, func(_ int, olc *h245.OpenLogicalChannel) error { h245.VisitAddresses(olc, rewrite); return nil })
		ctlErr := h225.EditH245Control(&ui, func(_ int, m *h245.MultimediaSystemControlMessage) error {
			h245.VisitMessageAddresses(m, rewrite)
			return nil
		})
		h225.VisitAddresses(&ui, func(a *h225.TransportAddress) {
			if ap, err := ras.AddrPort(a); err == nil {
				*a = ras.Transport(netip.AddrPortFrom(relayIP, ap.Port()))
			}
		})
		out, err := ui.Marshal()
		if err != nil {
			t.Fatalf("edited message does not encode: %v (edits: %v, %v)", err, fsErr, ctlErr)
		}
		var back h225.H323UserInformation
		if err := back.Unmarshal(out); err != nil {
			t.Fatalf("edited message does not decode: %v", err)
		}
	})
}

// TestTsharkDissectsBuilders sends the Facility builders and the tunnel
// in Q.931 Facility messages through tshark's Q.931/H.225.0/H.245
// dissectors.
func TestTsharkDissectsBuilders(t *testing.T) {
	testpeer.Require(t, "tshark")
	callID := [16]byte{0xca, 0x11}
	tun, err := h225.Tunnel(h245.NewRoundTripDelayRequest(7))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "facility.pcap")
	w, err := capture.NewPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	src, dst := netip.MustParseAddrPort("127.0.0.5:40000"), netip.MustParseAddrPort("127.0.0.6:1720")
	for _, ui := range []*h225.H323UserInformation{
		h225.StartH245Facility(callID, sample.ConferenceID, ras.Transport(netip.MustParseAddrPort("127.0.0.5:1300"))),
		h225.EmptyFacility(callID),
		tun,
	} {
		b, err := sample.Q931(q931.Facility, false, ui)
		if err != nil {
			t.Fatal(err)
		}
		pkt, _ := q931.AppendTPKT(nil, b)
		if err := w.TCP(src, dst, pkt); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	out, err := exec.Command("tshark", "-r", path, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(text, "Malformed") {
		t.Fatalf("tshark reports a malformed packet:\n%s", text)
	}
	for _, want := range []string{"reason: startH245", "reason: undefinedReason", "h323-message-body: empty", "roundTripDelayRequest", "ip: 127.0.0.5", "port: 1300"} {
		if !strings.Contains(text, want) {
			t.Errorf("tshark output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("tshark:\n%s", text)
	}
}
