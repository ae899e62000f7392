//go:build linux

package testpeer

import (
	"syscall"
	"time"
)

// CPUTime is the user and system CPU time this process has used; a
// benchmark divides the difference over its run by the operations done.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
