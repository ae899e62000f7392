//go:build !linux

package media

import (
	"errors"
	"sync/atomic"
)

// fastPath is absent outside Linux: every packet is relayed in user space.
type fastPath struct{ entries atomic.Int64 }

func (r *Relay) startFast() error {
	r.setFastMetric("userspace")
	if r.cfg.FastPath == FastPathOn {
		return errors.New("media: fast_path on: eBPF needs Linux")
	}
	return nil
}

func (f *fastPath) close()                         {}
func (f *fastPath) install(fastEntry) error        { return errors.New("no fast path") }
func (f *fastPath) delete(*fastEntry) fastCounters { return fastCounters{} }
func (f *fastPath) lookup(*fastEntry) fastCounters { return fastCounters{} }
func (f *fastPath) fallback(error)                 {}
func (f *fastPath) kernelTotals() (uint64, uint64) { return 0, 0 }
