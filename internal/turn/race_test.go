//go:build race

package turn

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// code that reuses pooled buffers allocates under it.
const raceEnabled = true
