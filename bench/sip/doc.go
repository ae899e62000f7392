// Package sip benchmarks Portico's SIP edge against real peers: sipp as
// load and as the generator's own reference, Kamailio as the inside
// registrar/proxy and as the reference registrar and proxy. Each path's
// highest passing rate is searched by doubling then bisection.
//
// Run it with PORTICO_BENCH=1 go test ./bench/sip -run TestSIPBenchmark -v
// -timeout 90m (20 s steps, two rounds; PORTICO_BENCH_QUICK=1 for 5 s
// steps); it prints the figures kept in docs/performance.md.
// BenchmarkRegister and BenchmarkCall measure Portico's allocations and
// CPU per REGISTER and per call at a fixed rate (go test ./bench/sip -run
// XXX -bench . -benchmem -benchtime 3000x), with the collector's share and
// each peer process's CPU per operation; BenchmarkCallDirect (Portico
// alone between the sipps) and BenchmarkCallKamailio (Kamailio alone) give
// the same for the other call paths. TestSIPRecovery offers a normal step
// of calls after an overloading one and logs what the edge holds between.
// Portico runs in the test process at the garbage collector's target of
// portico serve (400) unless GOGC is set.
package sip
