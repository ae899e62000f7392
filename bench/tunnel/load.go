package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/portico-edge/portico/internal/batchio"
)

// echo is n UDP sockets on consecutive ports that answer every datagram.
type echo struct {
	conns []*net.UDPConn
	poll  *sockPoll
}

func newEcho(n int) (*echo, int, error) {
	for try := 0; try < 50; try++ {
		base := 10000 + rand.IntN(22000) // below the ephemeral range, where the flows' own sockets bind
		e := &echo{}
		ok := true
		for p := base; p < base+n; p++ {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p))))
			if err != nil {
				ok = false
				break
			}
			e.conns = append(e.conns, c)
		}
		if !ok {
			e.close()
			continue
		}
		for _, c := range e.conns {
			c.SetReadBuffer(1 << 20)
		}
		// Every datagram goes back to its source from the socket it came
		// to, a batch with one sendmmsg.
		p, err := startPoll(e.conns, func(_, fd int, b *batchio.Batch, n int) { b.SendFD(fd, 0, n) })
		if err != nil {
			e.close()
			return nil, 0, err
		}
		e.poll = p
		return e, base, nil
	}
	return nil, 0, errors.New("no free range of echo ports")
}

func (e *echo) close() {
	if e.poll != nil {
		e.poll.stop()
	}
	for _, c := range e.conns {
		c.Close()
	}
}

// freeRange finds n consecutive free UDP ports on 127.0.0.1.
func freeRange(n int) (int, error) {
	for try := 0; try < 50; try++ {
		base := 10000 + rand.IntN(22000) // below the ephemeral range, where the flows' own sockets bind
		var open []*net.UDPConn
		ok := true
		for p := base; p < base+n; p++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				break
			}
			open = append(open, c)
		}
		for _, c := range open {
			c.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, errors.New("no free range of ports")
}

// flows are the generator's calls: one connected socket each, whose
// receiver records the round trip of every echoed packet.
type flows struct {
	conns []*net.UDPConn
	epoch time.Time
	recv  atomic.Uint64
	hist  histogram
	poll  *sockPoll
}

// histogram counts round trips in 10 µs buckets up to 500 ms (the last
// bucket holds everything longer).
type histogram struct{ b [50001]atomic.Uint32 }

func (h *histogram) add(ns int64) {
	i := ns / 10000
	if i < 0 {
		i = 0
	}
	if i >= int64(len(h.b)) {
		i = int64(len(h.b)) - 1
	}
	h.b[i].Add(1)
}

func (h *histogram) reset() {
	for i := range h.b {
		h.b[i].Store(0)
	}
}

// quantile returns the q quantile in milliseconds (the bucket's upper edge).
func (h *histogram) quantile(q float64) float64 {
	var n uint64
	for i := range h.b {
		n += uint64(h.b[i].Load())
	}
	if n == 0 {
		return math.NaN()
	}
	want := uint64(math.Ceil(q * float64(n)))
	var c uint64
	for i := range h.b {
		c += uint64(h.b[i].Load())
		if c >= want {
			return float64(i+1) / 100
		}
	}
	return float64(len(h.b)) / 100
}

func newFlows(base, n int) (*flows, error) {
	f := &flows{epoch: time.Now()}
	for i := 0; i < n; i++ {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: base + i})
		if err != nil {
			f.close()
			return nil, err
		}
		c.SetReadBuffer(1 << 20)
		f.conns = append(f.conns, c)
	}
	p, err := startPoll(f.conns, func(_, _ int, b *batchio.Batch, n int) {
		now := int64(time.Since(f.epoch))
		for _, m := range b.Msgs[:n] {
			if m.N < 8 {
				continue
			}
			f.recv.Add(1)
			f.hist.add(now - int64(binary.BigEndian.Uint64(m.Buf)))
		}
	})
	if err != nil {
		f.close()
		return nil, err
	}
	f.poll = p
	return f, nil
}

func (f *flows) close() {
	if f.poll != nil {
		f.poll.stop()
	}
	for _, c := range f.conns {
		c.Close()
	}
}

// step is one measurement: rate packets/s in total (each way) for d.
type step struct {
	rate           float64
	size           int
	sent, recv     uint64
	p50, p99       float64 // ms, round trip
	cpuS, cpuC     float64 // CPU-seconds of the tunnel server and client
	cpuGen         float64 // CPU-seconds of this process (generator and echo)
	secs           float64
	loss           float64
	rcvbuf, sndbuf uint64 // kernel UDP buffer drops on the machine
	ok             bool
	achieved       float64
}

// measure sends rate packets/s of size bytes spread over all flows for d,
// waits for late answers and returns the step. pids are the tunnel ends
// (0 for the direct path).
func (f *flows) measure(rate float64, size int, d time.Duration, srv, cli int) step {
	f.hist.reset()
	r0 := f.recv.Load()
	s0, c0, g0 := cpuSeconds(srv), cpuSeconds(cli), cpuSeconds(os.Getpid())
	rb0, sb0 := udpErrors()
	pkt := make([]byte, size)
	start := time.Now()
	var sent uint64
	tick := time.NewTicker(time.Millisecond)
	i := 0
	for now := range tick.C {
		el := now.Sub(start)
		if el >= d {
			break
		}
		want := uint64(el.Seconds() * rate)
		for ; sent < want; sent++ {
			binary.BigEndian.PutUint64(pkt, uint64(time.Since(f.epoch)))
			// The socket's own descriptor: a loopback UDP write does not
			// block, so it needs neither the network poller nor a hand-off.
			unix.RawSyscall(unix.SYS_WRITE, uintptr(f.poll.fds[i]), uintptr(unsafe.Pointer(&pkt[0])), uintptr(len(pkt)))
			if i++; i == len(f.conns) {
				i = 0
			}
		}
	}
	tick.Stop()
	secs := time.Since(start).Seconds()
	time.Sleep(time.Second) // answers later than this count as lost
	st := step{rate: rate, size: size, sent: sent, recv: f.recv.Load() - r0, secs: secs}
	rb, sb := udpErrors()
	st.rcvbuf, st.sndbuf = rb-rb0, sb-sb0
	st.cpuS, st.cpuC, st.cpuGen = cpuSeconds(srv)-s0, cpuSeconds(cli)-c0, cpuSeconds(os.Getpid())-g0
	st.p50, st.p99 = f.hist.quantile(0.5), f.hist.quantile(0.99)
	if sent > 0 {
		st.loss = 1 - float64(st.recv)/float64(sent)
	}
	st.achieved = float64(sent) / secs
	return st
}

// search raises the rate by half each step from start while loss stays
// under 0.1 % and the generator keeps up with the rate asked; it returns
// the best passing step and all steps.
func (f *flows) search(start, max float64, size int, d time.Duration, srv, cli int) (best step, all []step) {
	for r := start; r <= max; r *= 1.5 {
		st := f.measure(r, size, d, srv, cli)
		st.ok = st.loss < 0.001 && st.achieved > 0.97*r
		all = append(all, st)
		if !st.ok {
			break
		}
		best = st
	}
	return best, all
}

// setupRate opens n new flows, 32 at a time, each sending one packet to a
// port of the range at base and waiting up to 1 s for its answer. It
// returns the flows answered per second and how many were not answered.
func setupRate(base, ports, n int) (perSec float64, failed int) {
	var next, fails atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 2048)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: base + i%ports})
				if err != nil {
					fails.Add(1)
					continue
				}
				c.Write(make([]byte, 172))
				c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(b); err != nil {
					fails.Add(1)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	return float64(n-int(fails.Load())) / time.Since(start).Seconds(), int(fails.Load())
}

// cpuSeconds reads the user and system time of pid; 0 for pid 0.
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// udpErrors reads the machine's UDP receive-buffer and send-buffer error
// counters from /proc/net/snmp (datagrams the kernel dropped).
func udpErrors() (rcvbuf, sndbuf uint64) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, 0
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "Udp: ") {
			continue
		}
		f := strings.Fields(l)[1:]
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			switch n {
			case "RcvbufErrors":
				rcvbuf = v
			case "SndbufErrors":
				sndbuf = v
			}
		}
	}
	return rcvbuf, sndbuf
}
