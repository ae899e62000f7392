package main

import (
	"net"

	"github.com/portico-edge/portico/internal/batchio"
)

// sockPoll reads many UDP sockets from one goroutine, as the other machines
// the generator and the echo stand for would cost nothing on this one: one
// epoll_wait reports the ready sockets and each is read with one recvmmsg,
// instead of one goroutine per socket waking, reading, and reading again
// to find the socket empty. Its sockets are read only by it; their writes
// may go through the net package or the raw descriptor (fds).
type sockPoll struct {
	set  *batchio.EpollSet
	fds  []int // the sockets' descriptors, by index
	done chan struct{}
}

// pollBatch is the most datagrams taken from one socket in one read.
const pollBatch = 16

// startPoll calls on(i, fd, batch, n) on the poller's goroutine for every
// batch of n datagrams read from conns[i], whose descriptor is fd. stop
// ends it; conns are closed by the caller after stop.
func startPoll(conns []*net.UDPConn, on func(i, fd int, b *batchio.Batch, n int)) (*sockPoll, error) {
	set, err := batchio.NewEpollSet(256)
	if err != nil {
		return nil, err
	}
	p := &sockPoll{set: set, done: make(chan struct{})}
	for i, c := range conns {
		rc, err := c.SyscallConn()
		if err == nil {
			fd := -1
			_ = rc.Control(func(f uintptr) { fd = int(f) })
			p.fds = append(p.fds, fd)
			err = set.Add(rc, uint32(i)+1) // 0 is the set's stop event
		}
		if err != nil {
			set.Close()
			return nil, err
		}
	}
	go p.run(on)
	return p, nil
}

func (p *sockPoll) run(on func(i, fd int, b *batchio.Batch, n int)) {
	defer close(p.done)
	b := batchio.NewBatch(pollBatch)
	for {
		events, err := p.set.Wait()
		if err != nil {
			return
		}
		for _, ev := range events {
			if ev.Fd == batchio.EpollStopID {
				return
			}
			// Level-triggered: a socket with more than one batch waiting
			// is reported again by the next Wait.
			i := int(ev.Fd) - 1
			if n, err := b.RecvFD(p.fds[i], 0); err == nil && n > 0 {
				on(i, p.fds[i], b, n)
			}
		}
	}
}

// stop ends the poller's goroutine and waits for it.
func (p *sockPoll) stop() {
	p.set.Stop()
	<-p.done
	p.set.Close()
}
