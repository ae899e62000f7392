// Package h323 benchmarks Portico's H.323 RAS edge: N outside endpoints
// (each its own UDP socket on loopback, H.460.18 offered) register through
// `portico serve`, run as a child process so that its CPU time is read
// from /proc apart from the load generator's; then they send lightweight
// keep-alive RRQs, first at the interval Portico grants, then at rising
// offered rates (3 searches): the last rate with every answer and p99
// within 5 ms, the last with every answer, and the first with a loss,
// with kernel drops counted at Portico's socket and at the generator's.
// A scripted inside gatekeeper in the test process confirms every RRQ
// (it stands in for GnuGk or a DMA: no H.323 gatekeeper is packaged).
//
// Run it with PORTICO_BENCH=1 go test ./bench/h323 -run TestH323Benchmark -v -timeout 30m
// (a few minutes); it prints the table kept in docs/performance.md.
// PORTICO_BENCH_N=5000 limits it to one size.
//
// TestH323CallSetupBenchmark measures call setups through `portico serve`
// (h323 and media sections): guests on 1,000 loopback addresses call a
// VMR alias with two fastStart proposals (G.711), Portico allocates a relay
// stream and connects to a scripted callee, which answers Connect with its
// fastStart choice; the caller then releases. The callee runs in a process
// of its own (the test binary started again with PORTICO_BENCH_CALLEE), so
// that it shares no scheduler or collector with the generator; both
// collect garbage only past 1 GiB of heap. Offered
// rates double from 250 calls/s until a call fails (each call has 5 s; more
// than 2,000 in flight fail), then two bisection steps; at half the highest
// passing rate the Setup → Connect latency through Portico is compared with
// the same calls straight to the callee, two ways: end to end (Setup about
// to be encoded → Connect read by the caller), and kernel-stamped less the
// callee's own time (Setup handed to the kernel → Connect in the caller's
// socket by SO_TIMESTAMPING, minus the callee's time from Setup in its
// socket to Connect handed to its kernel), which leaves out the endpoints'
// own waits for a CPU. The generator alone is run at
// the rate Portico failed. Three repeats (PORTICO_BENCH_REPEATS), each on a
// fresh daemon on its own loopback addresses; every figure carries the load
// average. At half the ceiling it also reports Portico's CPU per call and
// the setup split by step, read from the daemon's
// portico_h323_setup_stage_seconds histogram before and after that phase.
// With PORTICO_BENCH_PROFILE=dir the daemon is built with the
// portico_profile tag and writes an execution trace and CPU, block and
// mutex profiles of that phase to dir/run<N>.
//
//	PORTICO_BENCH=1 go test ./bench/h323 -run TestH323CallSetupBenchmark -v -timeout 20m
package h323
