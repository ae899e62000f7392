package main

import "runtime/debug"

// serveGCPercent is the garbage collector's target for serve when GOGC
// does not set one. The daemon's live heap is small (about 7 MB in the
// H.323 call-setup benchmark) and its allocation rate high (every call
// setup decodes and re-encodes its messages), so at Go's default of 100
// it collected several times a second, and each collection's mark phase
// took CPU from the calls being set up. At 400 it collected five to twenty
// times less often there (every 1,000–4,500 calls), with a next-collection goal of 39–139 MB instead
// of 15 MB (docs/performance.md).
const serveGCPercent = 400

// tuneGC sets the collector's target for serve, unless the environment
// chose one (GOGC, including GOGC=off).
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}
