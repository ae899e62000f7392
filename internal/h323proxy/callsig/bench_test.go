package callsig

import (
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/ladder"
	"github.com/portico-edge/portico/internal/testpeer"
)

// BenchmarkCallSetup measures whole calls through the proxy, one after
// another on loopback: TCP connect, Setup with two fastStart proposals,
// routing, TCP connect inside, relay allocation, Connect with the
// fastStart answer, ReleaseComplete and relay release (the history
// record is written by another goroutine, in batches). calls/s is the
// setup rate of one caller at a time.
func BenchmarkCallSetup(b *testing.B) {
	benchCallSetup(b)
}

// BenchmarkCallSetupCaptured is BenchmarkCallSetup with the call
// signalling kept in a capture store, as portico serve keeps it.
func BenchmarkCallSetupCaptured(b *testing.B) {
	benchCallSetup(b, func(d *Deps) { d.Capture = ladder.New(ladder.Config{}) })
}

// benchCallSetup places the calls of BenchmarkCallSetup and reports the
// process's CPU time per call (Portico, caller and callee together).
func benchCallSetup(b *testing.B, opts ...func(*Deps)) {
	p := startPortico(b, Config{MaxCalls: 100}, opts...)
	calleeLn := listenTCP(b, insideEP)
	p.mu.Lock()
	p.route = lnAddr(calleeLn)
	p.mu.Unlock()
	go func() {
		for range p.hist.ch {
		}
	}()
	c := newBenchCall(b, "1000")
	b.ReportAllocs()
	start, cpu := time.Now(), testpeer.CPUTime()
	for b.Loop() {
		c.run(b, p, calleeLn)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	b.ReportMetric(float64((testpeer.CPUTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkCallSetupParallel runs the calls of BenchmarkCallSetup from
// GOMAXPROCS×4 callers at once, each to its own callee.
func BenchmarkCallSetupParallel(b *testing.B) {
	p := startPortico(b, Config{MaxCalls: 1000})
	var worker atomic.Int64
	go func() {
		for range p.hist.ch {
		}
	}()
	b.ReportAllocs()
	b.SetParallelism(4)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		alias := strconv.Itoa(2000 + int(worker.Add(1)))
		ln := listenTCP(b, insideEP)
		p.mu.Lock()
		p.routes[alias] = lnAddr(ln)
		p.mu.Unlock()
		c := newBenchCall(b, alias)
		for pb.Next() {
			c.run(b, p, ln)
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

type benchCall struct {
	setup, connect, release *h225.H323UserInformation
}

func newBenchCall(b testing.TB, alias string) *benchCall {
	rtp := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(outsideEP, port) }
	fast := encOLC(b, olcTx(1, 1, g711(), netip.AddrPort{}, rtp(5001)), olcRx(2, 1, g711(), rtp(5000), rtp(5001)))
	in := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(insideEP, port) }
	ans := encOLC(b, olcTx(1, 1, g711(), in(6000), in(6001)), olcRx(2, 1, g711(), netip.AddrPort{}, in(6001)))
	id := newCallID()
	return &benchCall{
		setup:   setupUI(alias, id, netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, fast),
		connect: answerUI(h225.H323UUPDUH323MessageBody_Connect, id, netip.AddrPort{}, ans),
		release: answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, id, netip.AddrPort{}, nil),
	}
}

// run places one call: Setup, Connect, ReleaseComplete.
func (c *benchCall) run(b testing.TB, p *portico, calleeLn net.Listener) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: outsideEP.AsSlice()}}
	cc, err := d.Dial("tcp", p.outAddr.String())
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	caller := newEndpoint(b, cc)
	defer caller.fr.Release()
	caller.send(q931.Setup, false, c.setup)
	calleeLn.(*net.TCPListener).SetDeadline(deadline())
	ic, err := calleeLn.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer ic.Close()
	callee := newEndpoint(b, ic)
	defer callee.fr.Release()
	callee.expect(q931.Setup)
	callee.send(q931.Connect, true, c.connect)
	caller.expect(q931.Connect)
	caller.send(q931.ReleaseComplete, false, c.release, withCause(CauseNormal))
	callee.expect(q931.ReleaseComplete)
}
