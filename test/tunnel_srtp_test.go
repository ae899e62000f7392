package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestTunnelSRTP: baresip inside calls baresip outside (registered at the
// DMZ node) through Kamailio, the reverse service and the DMZ node's SIP
// edge, both requiring SDES SRTP (RFC 4568, mediaenc srtp-mand). The edge
// passes the a=crypto lines and the relay the SRTP packets untouched, and
// the media crosses the tunnel through the mirrored internal port range:
// both ends enable SRTP with the key the other offered and receive audio
// they decrypt.
func TestTunnelSRTP(t *testing.T) {
	testpeer.Require(t, "baresip")
	r := startTunnelSIPRig(t, "", 0)
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, tone, 20*time.Second)

	bob := startBaresip(t, r.outNS, r.outIP, tone, fmt.Sprintf(`<sip:bob@portico.test>;outbound="sip:%s";regint=60;answermode=auto;mediaenc=srtp-mand;audio_codecs=PCMA`, r.ext), 30*time.Second)
	waitFor(t, 15*time.Second, func() bool {
		var regs []struct{ AOR string }
		r.api.must(200, "GET", "/api/v1/registrations", nil).json(t, &regs)
		return len(regs) == 1 && strings.Contains(regs[0].AOR, "bob@")
	})
	alice := startBaresip(t, r.inNS, "127.0.0.6", tone, `<sip:alice@127.0.0.6>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMA`, 10*time.Second, "-e", "/dial sip:bob@"+r.kam)

	// The relay forwards the call's (encrypted) media both ways.
	waitFor(t, 20*time.Second, func() bool {
		s := liveStreams(t, r.api)
		for _, st := range s {
			return st.PacketsIn > 50 && st.PacketsOut > 50
		}
		return false
	})
	if err := alice.cmd.Wait(); err != nil {
		t.Logf("alice: %v", err)
	}
	for name, b := range map[string]*baresipRun{"alice": alice, "bob": bob} {
		out := b.out.String()
		if !strings.Contains(out, "SRTP is Enabled") || !strings.Contains(out, "Call established") {
			t.Errorf("%s did not establish an SRTP call:\n%s", name, out)
			continue
		}
		tx, rx := lastBitrates(out)
		if tx == 0 || rx == 0 {
			t.Errorf("%s sent %d and received %d bit/s of decrypted audio:\n%s", name, tx, rx, out)
		}
		t.Logf("%s: SRTP audio %d bit/s sent, %d bit/s received and decrypted", name, tx, rx)
	}
	hist := tunnelCalls(t, r.api, 1)
	if hist[0].Status != 200 || len(hist[0].Streams) != 1 || hist[0].Streams[0].PacketsIn == 0 || hist[0].Streams[0].PacketsOut == 0 {
		t.Fatalf("call history %+v", hist)
	}
}

// baresipRun is one baresip process and its output.
type baresipRun struct {
	cmd *exec.Cmd
	out syncBuffer
}

// startBaresip runs baresip through via, listening for SIP on ip, with one
// account, sending the WAV file tone as its audio, for at most d.
func startBaresip(t *testing.T, via []string, ip, tone, account string, d time.Duration, args ...string) *baresipRun {
	t.Helper()
	dir := t.TempDir()
	lo, port := testpeer.FreePort(t), testpeer.FreePort(t)
	cfg := fmt.Sprintf(`poll_method epoll
sip_listen %s:%d
audio_player aufile,%s
audio_source aufile,%s
audio_alert aufile,%s
rtp_ports %d-%d
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module srtp.so
module_app account.so
module_app menu.so
`, ip, port, filepath.Join(dir, "heard.wav"), tone, filepath.Join(dir, "alert.wav"), lo-lo%2, lo-lo%2+40)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(account+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	all := append(append(via[:len(via):len(via)], "baresip", "-f", dir, "-t", strconv.Itoa(int(d/time.Second))), args...)
	b := &baresipRun{}
	b.cmd = exec.CommandContext(ctx, all[0], all[1:]...)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = b.cmd.Wait()
	})
	return b
}

var bitrates = regexp.MustCompile(`audio=(\d+)/(\d+) \(bit/s\)`)

// lastBitrates is baresip's last status line's audio bit rates: sent and
// received (decrypted).
func lastBitrates(out string) (tx, rx int) {
	m := bitrates.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, 0
	}
	tx, _ = strconv.Atoi(m[len(m)-1][1])
	rx, _ = strconv.Atoi(m[len(m)-1][2])
	return tx, rx
}

// writeTone writes a 440 Hz tone of length d as an 8 kHz 16-bit mono WAV
// file.
func writeTone(t *testing.T, path string, d time.Duration) {
	t.Helper()
	n := int(d / time.Second * 8000)
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + 2*n))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))     // PCM
	le(uint16(1))     // mono
	le(uint32(8000))  // sample rate
	le(uint32(16000)) // byte rate
	le(uint16(2))     // block align
	le(uint16(16))    // bits per sample
	b.WriteString("data")
	le(uint32(2 * n))
	for i := range n {
		le(int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000)))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
