// Package test holds whole-daemon tests: they build the portico binary, start
// it from a configuration string, and talk to it with real peers on loopback.
// It also keeps the house rules of the code base (package docs, import
// direction).
package test
