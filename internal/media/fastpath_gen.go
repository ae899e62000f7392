package media

// The eBPF object and its Go loader are generated from bpf/fastpath.c and
// committed, so building needs no clang. fastpath_test.go regenerates them
// when clang is installed and fails on any difference.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -target bpfel -no-global-types fastpath bpf/fastpath.c -- -I/usr/include/x86_64-linux-gnu -O2 -Wall -Werror
