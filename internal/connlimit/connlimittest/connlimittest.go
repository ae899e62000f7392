// Package connlimittest makes listeners that fail the way a process out of
// descriptors or buffers does, for tests of accept loops.
package connlimittest

import (
	"net"
	"os"
	"sync"
	"syscall"
)

// FailingListener fails its first N accepts with AcceptError(Errno), then
// accepts from the embedded listener.
type FailingListener struct {
	net.Listener
	Errno syscall.Errno

	mu sync.Mutex
	N  int // accepts left to fail; set before the first Accept
}

// Accept fails while N is positive, then accepts.
func (f *FailingListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if f.N > 0 {
		f.N--
		f.mu.Unlock()
		return nil, AcceptError(f.Errno)
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

// AcceptError is the error net.TCPListener.Accept returns for errno.
func AcceptError(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}
