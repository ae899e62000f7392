// Package sip benchmarks Portico's SIP edge against real peers: sipp as
// load, Kamailio as the inside registrar/proxy and as the reference proxy.
//
// Run it with PORTICO_BENCH=1 go test ./bench/sip -run TestSIPBenchmark -v
// (it takes a few minutes); it prints the table kept in docs/performance.md.
package sip
