//go:build portico_profile

package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
)

// A binary built with the portico_profile tag (never the packaged one)
// profiles itself on request when PORTICO_PROFILE_DIR names a directory:
// SIGUSR1 starts an execution trace (trace.out) and a CPU profile
// (cpu.prof) there and turns on block and mutex sampling; SIGUSR2 stops
// them and writes block.prof, mutex.prof and goroutine.prof beside. The
// benchmarks use it to profile one phase of a run.
func init() {
	dir := os.Getenv("PORTICO_PROFILE_DIR")
	if dir == "" {
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		var tf, cf *os.File
		for s := range sig {
			switch {
			case s == syscall.SIGUSR1 && tf == nil:
				var err error
				if err = os.MkdirAll(dir, 0o755); err == nil {
					tf, err = os.Create(filepath.Join(dir, "trace.out"))
				}
				if err == nil {
					cf, err = os.Create(filepath.Join(dir, "cpu.prof"))
				}
				if err == nil {
					err = trace.Start(tf)
				}
				if err == nil {
					err = pprof.StartCPUProfile(cf)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "portico: profile:", err)
				}
				runtime.SetBlockProfileRate(10_000) // one sample per 10 µs blocked
				runtime.SetMutexProfileFraction(10)
			case s == syscall.SIGUSR2 && tf != nil:
				trace.Stop()
				pprof.StopCPUProfile()
				tf.Close()
				cf.Close()
				tf, cf = nil, nil
				for _, name := range []string{"block", "mutex", "goroutine"} {
					if f, err := os.Create(filepath.Join(dir, name+".prof")); err == nil {
						pprof.Lookup(name).WriteTo(f, 0)
						f.Close()
					}
				}
				runtime.SetBlockProfileRate(0)
				runtime.SetMutexProfileFraction(0)
			}
		}
	}()
}
