//go:build !linux

package testpeer

import "time"

// CPUTime is not measured here: benchmarks report 0 CPU per operation.
func CPUTime() time.Duration { return 0 }
