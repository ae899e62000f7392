//go:build !linux

package turn

import "errors"

// relayPoller needs epoll; elsewhere every relay socket is read by its own
// goroutine.
type relayPoller struct{}

func newRelayPoller() (*relayPoller, error) { return nil, errors.ErrUnsupported }

func (p *relayPoller) stop()                      {}
func (p *relayPoller) add(*relayPacketConn) error { return errors.ErrUnsupported }
func (p *relayPoller) remove(*relayPacketConn)    {}
