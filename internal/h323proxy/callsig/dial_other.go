//go:build !linux

package callsig

import (
	"net"
	"syscall"
)

// bindNoPort binds as the platform does (see dial_linux.go).
var bindNoPort func(network, address string, c syscall.RawConn) error

// peeker reports nothing here (see dial_linux.go).
type peeker struct{}

func (*peeker) peek(net.Conn) (b []byte, eof bool) { return nil, false }
