//go:build !linux

package callsig

import "syscall"

// bindNoPort binds as the platform does (see dial_linux.go).
var bindNoPort func(network, address string, c syscall.RawConn) error
