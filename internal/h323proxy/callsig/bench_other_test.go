//go:build !linux

package callsig

import "time"

// cpuTime is not measured here: the benchmarks report 0 CPU per call.
func cpuTime() time.Duration { return 0 }
