//go:build !linux

package tunnel

import (
	"errors"
	"net"

	"github.com/portico-edge/portico/internal/batchio"
)

// localPoller exists on Linux only; elsewhere each local socket is read
// by its own goroutine.
type localPoller struct{}

type polledSock struct{}

func newLocalPoller() (*localPoller, error) {
	return nil, errors.New("tunnel: no socket poller on this system")
}

func (p *localPoller) stop() {}

func (p *localPoller) add(*net.UDPConn, func(*batchio.Message), func()) (*polledSock, error) {
	return nil, net.ErrClosed
}

func (p *localPoller) remove(*polledSock) {}
