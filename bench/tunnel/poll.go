package main

import (
	"errors"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/portico-edge/portico/internal/batchio"
)

// sockPoll reads many UDP sockets from one goroutine, as the other machines
// the generator and the echo stand for would cost nothing on this one: one
// epoll_wait reports the ready sockets and each is read with one recvmmsg,
// instead of one goroutine per socket waking, reading, and reading again
// to find the socket empty. Its sockets are read only by it; their writes
// may go through the net package or the raw descriptor (fds).
type sockPoll struct {
	ep, wake int
	epf      *os.File // ep, waited for in Go's network poller
	fds      []int    // the sockets' descriptors, by index
	done     chan struct{}
}

// pollBatch is the most datagrams taken from one socket in one read.
const pollBatch = 16

// startPoll calls on(i, fd, batch, n) on the poller's goroutine for every
// batch of n datagrams read from conns[i], whose descriptor is fd. stop ends it; conns are closed
// by the caller after stop.
func startPoll(conns []*net.UDPConn, on func(i, fd int, b *batchio.Batch, n int)) (*sockPoll, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, err
	}
	p := &sockPoll{ep: ep, wake: wake, done: make(chan struct{})}
	add := func(fd, id int) error {
		return unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(id)})
	}
	err = add(wake, -1)
	for i, c := range conns {
		if err != nil {
			break
		}
		var rc interface{ Control(func(uintptr)) error }
		if rc, err = c.SyscallConn(); err != nil {
			break
		}
		fd := -1
		_ = rc.Control(func(f uintptr) { fd = int(f) })
		p.fds = append(p.fds, fd)
		err = add(fd, i)
	}
	if err == nil {
		// The goroutine waits for the epoll set in Go's network poller (an
		// epoll descriptor is readable while it has events) rather than in
		// a blocking epoll_wait that holds a thread and hands its P over.
		err = unix.SetNonblock(ep, true)
	}
	if err != nil {
		unix.Close(wake)
		unix.Close(ep)
		return nil, err
	}
	p.epf = os.NewFile(uintptr(ep), "epoll")
	rc, err := p.epf.SyscallConn()
	if err != nil {
		unix.Close(wake)
		p.epf.Close()
		return nil, err
	}
	go p.run(rc, on)
	return p, nil
}

func (p *sockPoll) run(rc syscall.RawConn, on func(i, fd int, b *batchio.Batch, n int)) {
	defer close(p.done)
	b := batchio.NewBatch(pollBatch)
	events := make([]unix.EpollEvent, 256)
	var k int
	var err error
	wait := func(fd uintptr) bool {
		k, err = unix.EpollWait(int(fd), events, 0)
		return err != nil || k > 0 // else wait in the network poller
	}
	for {
		if rc.Read(wait) != nil {
			return
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:k] {
			if ev.Fd < 0 {
				return
			}
			// Level-triggered: a socket with more than one batch waiting
			// is reported again by the next epoll_wait.
			if n, err := b.RecvFD(p.fds[ev.Fd], 0); err == nil && n > 0 {
				on(int(ev.Fd), p.fds[ev.Fd], b, n)
			}
		}
	}
}

// stop ends the poller's goroutine and waits for it.
func (p *sockPoll) stop() {
	one := [8]byte{1}
	unix.Write(p.wake, one[:])
	<-p.done
	unix.Close(p.wake)
	p.epf.Close()
}
