package sipedge

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

type baresip struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	mu   *sync.Mutex
	cons string
	done chan struct{}
}

// startBaresip runs a baresip outside (127.0.0.1) registered through
// Portico with mandatory SRTP (SDES, AES_CM_128_HMAC_SHA1_80) and
// auto-answer; commands go to its UDP console.
func startBaresip(t *testing.T, user, portico string) *baresip {
	t.Helper()
	bin := testpeer.Require(t, "baresip")[0]
	dir := t.TempDir()
	// baresip binds SIP/TLS on its SIP port + 1 even when only udp is
	// configured: take three neighbouring ports (SIP, its TLS, console).
	base := testpeer.FreePorts(t, 3)
	sipPort, consPort := strconv.Itoa(base), strconv.Itoa(base+2)
	conf := fmt.Sprintf(`poll_method		epoll
sip_listen		%s:%s
sip_transports		udp
audio_player		aufile,%s
audio_alert		aufile,%s
audio_source		ausine,440
rtp_stats		yes
cons_listen		%s:%s
module_path		/usr/lib/baresip/modules
module			g711.so
module			opus.so
module			ausine.so
module			aufile.so
module			srtp.so
module			cons.so
module_app		account.so
module_app		menu.so
`, outsideIP, sipPort, filepath.Join(dir, "play.wav"), filepath.Join(dir, "alert.wav"), outsideIP, consPort)
	acc := fmt.Sprintf("<sip:%s@portico.test>;outbound=\"sip:%s\";regint=600;mediaenc=srtp-mand;answermode=auto;audio_codecs=opus/48000/2\n", user, portico)
	os.WriteFile(filepath.Join(dir, "config"), []byte(conf), 0o644)
	os.WriteFile(filepath.Join(dir, "accounts"), []byte(acc), 0o644)
	os.WriteFile(filepath.Join(dir, "contacts"), nil, 0o644)
	b := &baresip{out: &bytes.Buffer{}, mu: &sync.Mutex{}, cons: outsideIP + ":" + consPort, done: make(chan struct{})}
	b.cmd = exec.Command(bin, "-f", dir, "-n", outsideIP, "-t", "60")
	b.cmd.Stdout = &lockedWriter{w: b.out, mu: b.mu}
	b.cmd.Stderr = b.cmd.Stdout
	b.cmd.Stdin = nil
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		b.cmd.Process.Signal(os.Interrupt)
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			b.cmd.Process.Kill()
			<-b.done
		}
		if t.Failed() {
			t.Logf("baresip %s output:\n%s", user, b.output())
		}
	})
	return b
}

func (b *baresip) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

func (b *baresip) command(t *testing.T, cmd string) {
	c, err := net.Dial("udp", b.cons)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(cmd + "\n"))
}

// TestBaresipSRTP: two baresip endpoints outside, both registered through
// Portico to Kamailio, call each other with mandatory SRTP; the call
// crosses Portico twice (in, then back out by the Path flow) and the
// encrypted media flows both ways through the relay untouched.
func TestBaresipSRTP(t *testing.T) {
	k := startKamailio(t, 64)
	p := startPortico(t, Config{CallServers: kamailioServer(k)})
	alice := startBaresip(t, "alice", p.extUDP.String())
	_ = startBaresip(t, "bob", p.extUDP.String())
	waitRegistered(t, p, "alice")
	waitRegistered(t, p, "bob")
	alice.command(t, "/dial sip:bob@portico.test")
	deadline := time.Now().Add(15 * time.Second)
	for {
		calls := p.s.Calls()
		confirmed := 0
		for _, c := range calls {
			if c.State == "confirmed" {
				confirmed++
			}
		}
		if confirmed == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls never confirmed: %+v", calls)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let media flow
	alice.command(t, "/hangup")
	recs := p.hist.waitCalls(t, 2)
	types := map[string]bool{}
	for _, r := range recs {
		types[r.CallType] = true
		if len(r.Streams) != 1 || r.Streams[0].PacketsIn < 20 || r.Streams[0].PacketsOut < 20 {
			t.Errorf("SRTP media not relayed both ways: %+v", r)
		}
		if r.Disposition != "normal" {
			t.Errorf("disposition = %q", r.Disposition)
		}
		t.Logf("%s call %s -> %s: %d packets in, %d out, codecs %s", r.CallType, r.From, r.To, r.Streams[0].PacketsIn, r.Streams[0].PacketsOut, r.Codecs)
	}
	if !types[CallRegistered] || !types[CallInbound] {
		t.Errorf("call types = %v, want registered and inbound", types)
	}
	if out := alice.output(); !strings.Contains(strings.ToLower(out), "srtp") {
		t.Logf("alice output does not mention srtp:\n%s", out)
	}
	assertNoInside(t, p.tap)
}
