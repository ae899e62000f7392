package sip

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// The benchmarks below measure what one REGISTER and one call cost
// Portico (in this process) at a fixed rate well below its ceiling, with
// Kamailio and sipp as separate processes: allocations and bytes per
// operation (-benchmem) and cpu-µs/op (this process's user and system
// time over the run). ns/op is set by the offered rate, not by Portico.
// Each run starts its own peers, so give a fixed count:
//
//	go test ./bench/sip -run XXX -bench 'Register|Call' -benchmem -benchtime 10000x -count 3

// benchRegisterRate and benchCallRate are the offered rates (per
// second); PORTICO_BENCH_CALL_RATE sets another call rate (to profile near
// the ceiling).
const (
	benchRegisterRate = 2000
	benchCallRate     = 300
)

func callRate() int {
	if v, err := strconv.Atoi(os.Getenv("PORTICO_BENCH_CALL_RATE")); err == nil && v > 0 {
		return v
	}
	return benchCallRate
}

// BenchmarkRegister sends b.N REGISTERs of users never seen before
// through Portico to the Kamailio registrar.
func BenchmarkRegister(b *testing.B) {
	testpeer.Require(b, "sipp", "kamailio")
	dir := b.TempDir()
	scen, _ := filepath.Abs("scenarios")
	kam := kamIP + ":" + port(b)
	kpid := kamailio(b, dir, kam, 4)
	ext := startPortico(b, kam).ext
	inf := users(b, dir, "b", b.N)
	measure(b, peerCPU{"kam": func() time.Duration { return groupCPU(kpid) }}, func() bool {
		ok, _, _ := sippRun(b, dir, "-sf", filepath.Join(scen, "register.xml"), "-inf", inf, "-i", loadIP, "-p", port(b),
			"-r", strconv.Itoa(benchRegisterRate), "-m", strconv.Itoa(b.N), "-l", strconv.Itoa(b.N), ext.String())
		return ok
	})
}

// BenchmarkCall makes b.N calls of sipp's uac scenario (INVITE with SDP,
// 200, ACK, 100 ms, BYE) through Portico's B2BUA with media allocated, to
// Kamailio as a record-routing proxy, to a sipp UAS.
func BenchmarkCall(b *testing.B) { benchCalls(b, throughBoth) }

// BenchmarkCallDirect makes the calls of BenchmarkCall through Portico
// straight to the sipp UAS (Portico's call server), the topology of
// BenchmarkCallKamailio with Portico in Kamailio's place.
func BenchmarkCallDirect(b *testing.B) { benchCalls(b, throughPortico) }

// BenchmarkCallKamailio makes the calls of BenchmarkCall to Kamailio
// alone (sipp uac → Kamailio proxy → sipp UAS), the search's reference
// path: its all-cpu-µs/op beside BenchmarkCall's tells what the path
// through Portico costs the machine more per call.
func BenchmarkCallKamailio(b *testing.B) { benchCalls(b, throughKamailio) }

// The paths of the call benchmarks: what sits between the sipp UAC and UAS.
const (
	throughBoth     = iota // Portico, then Kamailio
	throughKamailio        // Kamailio alone
	throughPortico         // Portico alone
)

func benchCalls(b *testing.B, path int) {
	testpeer.Require(b, "sipp", "kamailio")
	dir := b.TempDir()
	scen, _ := filepath.Abs("scenarios")
	uas := insideIP + ":" + port(b)
	uasCmd, _ := startProc(b, dir, "sipp", "-nostdin", "-sf", filepath.Join(scen, "uas.xml"), "-i", insideIP, "-p", strings.Split(uas, ":")[1],
		"-mp", mediaPort(b), "-max_socket", "100", "-buff_size", "4194304")
	peers := peerCPU{"uas": func() time.Duration { return groupCPU(uasCmd.Process.Pid) }}
	var target string
	if path == throughPortico {
		target = startPortico(b, uas).ext.String()
	} else {
		kam := kamIP + ":" + port(b)
		kpid := kamailio(b, dir, kam, 4, `MCU_URI="sip:`+uas+`"`, "WITH_RR")
		peers["kam"] = func() time.Duration { return groupCPU(kpid) }
		target = kam
		if path == throughBoth {
			target = startPortico(b, kam).ext.String()
		}
	}
	measure(b, peers, func() bool {
		ok, _, _ := sippRun(b, dir, "-sn", "uac", "-s", "1000", "-i", loadIP, "-p", port(b), "-mp", mediaPort(b), "-d", "100",
			"-r", strconv.Itoa(callRate()), "-m", strconv.Itoa(b.N), "-l", strconv.Itoa(b.N), target)
		return ok
	})
}

// peerCPU reads the CPU time of the peers' processes, by a short name.
type peerCPU map[string]func() time.Duration

// measure times run (one sipp run of b.N operations) and reports this
// process's CPU per operation, the part of it the garbage collector took
// (gc-cpu-µs/op, the runtime's own estimate) and the collections per
// thousand operations (gc/kop); then each peer's CPU per operation
// (<name>-cpu-µs/op: "kam" Kamailio's process group, "uas" the sipp UAS,
// "uac" the sipp load generator) and all of them with Portico
// (all-cpu-µs/op): what one operation costs the machine, which the
// search's ceiling divides into its two cores.
func measure(b *testing.B, peers peerCPU, run func() bool) {
	runtime.GC()
	b.ReportAllocs()
	peers["uac"] = childrenCPU
	p0 := map[string]time.Duration{}
	b.ResetTimer()
	for k, f := range peers {
		p0[k] = f()
	}
	c0, g0 := testpeer.CPUTime(), gcStats()
	ok := run()
	cpu, g1 := testpeer.CPUTime()-c0, gcStats()
	all := cpu
	for k, f := range peers {
		d := f() - p0[k]
		all += d
		b.ReportMetric(float64(d)/float64(time.Microsecond)/float64(b.N), k+"-cpu-µs/op")
	}
	b.StopTimer()
	if !ok {
		b.Fatal("sipp: not every operation succeeded")
	}
	n := float64(b.N)
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/n, "cpu-µs/op")
	b.ReportMetric((g1.cpu-g0.cpu)*1e6/n, "gc-cpu-µs/op")
	b.ReportMetric(float64(g1.cycles-g0.cycles)*1000/n, "gc/kop")
	b.ReportMetric(float64(all)/float64(time.Microsecond)/n, "all-cpu-µs/op")
}

// gcSample is the collector's CPU time (seconds) and cycle count so far.
type gcSample struct {
	cpu    float64
	cycles uint64
}

func gcStats() gcSample {
	m := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(m)
	return gcSample{cpu: m[0].Value.Float64(), cycles: m[1].Value.Uint64()}
}
