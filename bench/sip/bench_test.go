package sip

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/testpeer"
)

const (
	extIP    = "127.0.0.2"
	intIP    = "127.0.0.3"
	kamIP    = "127.0.0.4"
	insideIP = "127.0.0.5"
	loadIP   = "127.0.0.1"
)

func port(t *testing.T) string { return strconv.Itoa(testpeer.FreePort(t)) }

// mediaPort returns an even port p with p..p+3 free on 127.0.0.1 (sipp
// opens audio and video RTP/RTCP there).
var nextMedia = 50000 + os.Getpid()%2000*4

func mediaPort(t *testing.T) string {
	for ; nextMedia < 65000; nextMedia += 8 {
		p := nextMedia
		ok := true
		for i := 0; i < 4 && ok; i++ {
			c, err := net.ListenPacket("udp", fmt.Sprintf(":%d", p+i))
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			nextMedia += 8
			return strconv.Itoa(p)
		}
	}
	t.Fatal("no media ports")
	return ""
}

func startProc(t *testing.T, dir string, name string, args ...string) (*exec.Cmd, chan struct{}) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	logf, _ := os.Create(filepath.Join(dir, filepath.Base(name)+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd, done
}

// sippRun runs sipp to completion; ok is true when every call succeeded.
// rtts are the response times (ms) sipp measured, when traced.
func sippRun(t *testing.T, dir string, args ...string) (ok bool, elapsed time.Duration, rtts []float64) {
	sub, _ := os.MkdirTemp(dir, "sipp")
	os.Symlink("/usr/share/sip-tester", filepath.Join(sub, "pcap"))
	args = append([]string{"-nostdin", "-timeout", "60s", "-timeout_error", "-trace_rtt", "-rtt_freq", "1000000", "-max_socket", "100", "-trace_err"}, args...)
	cmd := exec.Command("sipp", args...)
	cmd.Dir = sub
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	start := time.Now()
	err := cmd.Run()
	elapsed = time.Since(start)
	files, _ := filepath.Glob(filepath.Join(sub, "*_rtt.csv"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			parts := strings.Split(sc.Text(), ";")
			if len(parts) >= 2 { // Date_ms;response_time_ms;rtd_no (whole ms)
				if v, err := strconv.ParseFloat(parts[1], 64); err == nil {
					rtts = append(rtts, v)
				}
			}
		}
		fh.Close()
	}
	if err != nil {
		errs, _ := filepath.Glob(filepath.Join(sub, "*_errors.log"))
		for _, f := range errs {
			b, _ := os.ReadFile(f)
			if len(b) > 2500 {
				b = append(b[:1500:1500], b[len(b)-1000:]...)
			}
			t.Logf("sipp errors (%s):\n%s", filepath.Base(f), b)
		}
	}
	os.RemoveAll(sub)
	return err == nil, elapsed, rtts
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

func kamailio(t *testing.T, dir string, listen string, defines ...string) {
	cfg, _ := filepath.Abs("../../test/testdata/kamailio/inside.cfg")
	args := []string{"-DD", "-E", "-f", cfg, "-m", "1024", "-M", "16", "-Y", dir, "-P", filepath.Join(dir, "k.pid"), "-l", "udp:" + listen}
	for _, d := range defines {
		args = append(args, "-A", d)
	}
	startProc(t, dir, "kamailio", args...)
	time.Sleep(1500 * time.Millisecond)
}

func startPortico(t *testing.T, kam string) (*sipedge.Server, netip.AddrPort) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	relay, err := media.New(media.Config{Interfaces: map[string]media.InterfaceConfig{
		sipedge.External: {Addr: netip.MustParseAddr(extIP), PortMin: 30000, PortMax: 39999},
		sipedge.Internal: {Addr: netip.MustParseAddr(intIP), PortMin: 40000, PortMax: 49999},
	}, Latching: media.LatchNAT}, media.Deps{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go relay.Run(ctx)
	ext, _ := net.ListenPacket("udp", extIP+":0")
	in, _ := net.ListenPacket("udp", intIP+":0")
	s, err := sipedge.New(sipedge.Config{
		Listeners: []sipedge.Listener{{Interface: sipedge.External, Transport: "udp", Address: ext.LocalAddr().String()},
			{Interface: sipedge.Internal, Transport: "udp", Address: in.LocalAddr().String()}},
		CallServers:      []sipedge.CallServer{{Address: kam}},
		Domain:           "portico.test",
		NATBindingExpiry: 3600 * time.Second,
		Guest:            sipedge.GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}},
		Limits:           sipedge.Limits{MaxRegistrations: 100000, MaxCalls: 100000},
	}, sipedge.Deps{Logger: logger, Media: relay})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ctx, []sipedge.BoundListener{{Interface: sipedge.External, Transport: "udp", Packet: ext},
		{Interface: sipedge.Internal, Transport: "udp", Packet: in}})
	t.Cleanup(func() { cancel(); s.Close(); relay.Close() })
	time.Sleep(200 * time.Millisecond)
	return s, netip.MustParseAddrPort(ext.LocalAddr().String())
}

// TestSIPBenchmark measures registrations/s and calls/s through Portico
// and through Kamailio alone, and holds 10,000 registrations with refresh.
func TestSIPBenchmark(t *testing.T) {
	if os.Getenv("PORTICO_BENCH") == "" {
		t.Skip("set PORTICO_BENCH=1 to run the SIP benchmark (minutes)")
	}
	testpeer.Require(t, "sipp", "kamailio")
	dir := t.TempDir()
	uas := insideIP + ":" + port(t)
	scenUAS, _ := filepath.Abs("scenarios/uas.xml")
	startProc(t, dir, "sipp", "-nostdin", "-sf", scenUAS, "-i", insideIP, "-p", strings.Split(uas, ":")[1], "-mp", mediaPort(t), "-max_socket", "100")
	kam := kamIP + ":" + port(t)
	kamailio(t, dir, kam, `MCU_URI="sip:`+uas+`"`, "WITH_RR")
	s, ext := startPortico(t, kam)
	scen, _ := filepath.Abs("scenarios")

	// Registrations per second, directly and through Portico.
	regPorts := map[string]string{kam: port(t), ext.String(): port(t)} // refreshes replace bindings
	regRate := func(target string, rate, n int) (bool, float64, []float64) {
		ok, el, rtt := sippRun(t, dir, "-sf", filepath.Join(scen, "register.xml"), "-i", loadIP, "-p", regPorts[target],
			"-r", strconv.Itoa(rate), "-m", strconv.Itoa(n), "-l", "5000", target)
		return ok, float64(n) / el.Seconds(), rtt
	}
	only := os.Getenv("PORTICO_BENCH_ONLY") // "", "regs" or "calls"
	best := map[string]float64{}
	for _, path := range []struct{ name, target string }{{"kamailio registrar", kam}, {"portico → kamailio", ext.String()}} {
		if only == "calls" {
			break
		}
		for _, rate := range []int{1000, 2000, 3000, 4000, 6000, 8000} {
			ok, got, rtt := regRate(path.target, rate, rate*5)
			t.Logf("REGISTER %-20s offered %5d/s: achieved %6.0f/s ok=%v p50=%.2fms p99=%.2fms", path.name, rate, got, ok, percentile(rtt, .5), percentile(rtt, .99))
			if !ok {
				break
			}
			best["reg "+path.name] = got
		}
	}
	if only != "calls" {
		heldRegistrations(t, dir, scen, s, ext)
	}
	if only == "regs" {
		return
	}
	callRates(t, dir, kam, ext, s, best)
}

func heldRegistrations(t *testing.T, dir, scen string, s *sipedge.Server, ext netip.AddrPort) {
	// 10,000 registrations held, then refreshed.
	before := len(s.Registrations())
	p := port(t)
	ok, el, _ := sippRun(t, dir, "-sf", filepath.Join(scen, "register.xml"), "-i", loadIP, "-p", p, "-r", "1000", "-m", "10000", "-l", "5000", ext.String())
	ok2, el2, _ := sippRun(t, dir, "-sf", filepath.Join(scen, "register.xml"), "-i", loadIP, "-p", p, "-r", "1000", "-m", "10000", "-l", "5000", ext.String())
	t.Logf("10,000 registrations: registered ok=%v in %v, refreshed ok=%v in %v; held before %d, after %d", ok, el.Round(time.Millisecond), ok2, el2.Round(time.Millisecond), before, len(s.Registrations()))
}

func callRates(t *testing.T, dir, kam string, ext netip.AddrPort, s *sipedge.Server, best map[string]float64) {
	rates := []int{250, 500, 750, 1000, 1500, 2000, 2500}
	if r := os.Getenv("PORTICO_BENCH_RATES"); r != "" {
		rates = nil
		for _, f := range strings.Split(r, ",") {
			n, _ := strconv.Atoi(f)
			rates = append(rates, n)
		}
	}
	// Calls per second: INVITE (SDP) → 200 → ACK → 100 ms → BYE.
	for _, path := range []struct{ name, target string }{{"kamailio proxy (rr)", kam}, {"portico b2bua+media", ext.String()}} {
		if os.Getenv("PORTICO_BENCH_PORTICO_ONLY") != "" && path.target == kam {
			continue
		}
		for _, rate := range rates {
			n := rate * 5
			ok, el, rtt := sippRun(t, dir, "-sn", "uac", "-s", "1000", "-i", loadIP, "-p", port(t), "-mp", mediaPort(t), "-d", "100",
				"-r", strconv.Itoa(rate), "-m", strconv.Itoa(n), "-l", "10000", path.target)
			got := float64(n) / el.Seconds()
			t.Logf("CALLS %-20s offered %5d/s: achieved %6.0f/s ok=%v setup p50=%.2fms p99=%.2fms", path.name, rate, got, ok, percentile(rtt, .5), percentile(rtt, .99))
			if !ok {
				break
			}
			best["calls "+path.name] = got
		}
	}
	// Concurrent calls held: 100 calls/s held 15 s each, through Portico.
	peak := 0
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				if n := len(s.Calls()); n > peak {
					peak = n
				}
			}
		}
	}()
	okc, elc, _ := sippRun(t, dir, "-sn", "uac", "-s", "1000", "-i", loadIP, "-p", port(t), "-mp", mediaPort(t), "-d", "15000",
		"-r", "100", "-m", "2000", "-l", "5000", ext.String())
	close(stop)
	t.Logf("CONCURRENT portico: 2000 calls of 15 s at 100/s, ok=%v in %v, peak %d calls held with media", okc, elc.Round(time.Second), peak)
	for k, v := range best {
		t.Logf("BEST %s: %.0f/s", k, v)
	}
}
