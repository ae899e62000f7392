//go:build linux

package tunnel

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/portico-edge/portico/internal/batchio"
)

// localPoller reads an end's local UDP sockets (the ports of its offered
// services and the sockets of the flows it delivers) from one goroutine:
// one epoll_wait reports the sockets with datagrams and each is read with
// one recvmmsg. A goroutine per socket costs, for every datagram of a
// 50 packets/s call, a wake-up, the read and a second read that finds the
// socket empty; here a datagram costs its share of one epoll_wait and one
// read, and the datagrams read in one round reach the send loops together
// (fuller bundles).
//
// The sockets stay in Go's network poller for their writes; their reads
// belong to the localPoller from add on. Closing a socket takes it out of
// the epoll set.
type localPoller struct {
	epfd int
	ep   *os.File        // epfd, waited for in Go's network poller
	rc   syscall.RawConn // of ep
	wake int             // eventfd: stop
	done chan struct{}

	mu      sync.Mutex // guards stopped, next and the writes of socks
	stopped bool
	next    uint32
	// socks is copied on write, so the poller's goroutine looks sockets
	// up without a lock that add or remove could hold.
	socks atomic.Pointer[map[uint32]*polledSock]

	// Owned by the poller's goroutine.
	in      *batchio.Batch
	events  [64]unix.EpollEvent
	waitFn  func(fd uintptr) bool
	ready   int
	waitErr error
}

// polledSock is one socket a localPoller reads.
type polledSock struct {
	id   uint32
	rc   syscall.RawConn
	read func(fd uintptr) bool // recvmmsg into the poller's batch
	n    int
	err  error
	// on takes each datagram read, on the poller's goroutine; fail, if
	// set, is told of a read error (a connected socket's target refused).
	on   func(m *batchio.Message)
	fail func()
}

// pollBatch is the most datagrams read from one socket in one round; a
// socket with more stays ready for the next epoll_wait.
const pollBatch = 8

// pollWakeID is the epoll data of the eventfd.
const pollWakeID = 0

// newLocalPoller starts a poller; stop ends it.
func newLocalPoller() (*localPoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, err
	}
	err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: pollWakeID})
	if err == nil {
		// The goroutine waits for the epoll set in Go's network poller
		// (an epoll descriptor is readable while it has events), not in
		// a blocking epoll_wait that would hold a thread.
		err = unix.SetNonblock(epfd, true)
	}
	if err != nil {
		_ = unix.Close(wake)
		_ = unix.Close(epfd)
		return nil, err
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		_ = unix.Close(wake)
		return nil, err
	}
	p := &localPoller{epfd: epfd, ep: ep, rc: rc, wake: wake, done: make(chan struct{}), in: batchio.NewBatch(pollBatch)}
	p.socks.Store(&map[uint32]*polledSock{})
	p.waitFn = func(fd uintptr) bool {
		p.ready, p.waitErr = unix.EpollWait(int(fd), p.events[:], 0)
		return p.waitErr != nil || p.ready > 0 // else wait in the network poller
	}
	go p.run()
	return p, nil
}

// stop ends the poller's goroutine and waits for it.
func (p *localPoller) stop() {
	p.mu.Lock()
	p.stopped = true // no add from now on: epfd is about to close
	p.mu.Unlock()
	one := [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
	<-p.done
	_ = unix.Close(p.wake)
	_ = p.ep.Close()
}

// add registers c: from now on the poller reads it and hands each
// datagram to on; a read error other than an empty socket calls fail.
func (p *localPoller) add(c *net.UDPConn, on func(m *batchio.Message), fail func()) (*polledSock, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &polledSock{rc: rc, on: on, fail: fail}
	s.read = func(fd uintptr) bool {
		s.n, s.err = p.in.RecvFD(int(fd), 0)
		return true // never wait: the poller waits in epoll_wait
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil, net.ErrClosed
	}
	old := *p.socks.Load()
	for {
		p.next++
		if _, used := old[p.next]; p.next != pollWakeID && !used {
			break
		}
	}
	s.id = p.next
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(s.id)})
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, cerr
	}
	m := make(map[uint32]*polledSock, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[s.id] = s
	p.socks.Store(&m)
	return s, nil
}

// remove forgets s; closing its socket takes it out of the epoll set.
func (p *localPoller) remove(s *polledSock) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.socks.Load()
	if old[s.id] != s {
		return
	}
	m := make(map[uint32]*polledSock, len(old))
	for k, v := range old {
		if k != s.id {
			m[k] = v
		}
	}
	p.socks.Store(&m)
}

func (p *localPoller) run() {
	defer close(p.done)
	for {
		if err := p.rc.Read(p.waitFn); err != nil {
			return
		}
		if p.waitErr != nil {
			if errors.Is(p.waitErr, unix.EINTR) {
				continue
			}
			return
		}
		socks := *p.socks.Load()
		for _, ev := range p.events[:p.ready] {
			if ev.Fd == pollWakeID {
				return
			}
			if s := socks[uint32(ev.Fd)]; s != nil {
				p.read(s)
			}
		}
	}
}

// read takes one batch from s. A socket with more waiting stays ready
// (level-triggered) for the next epoll_wait.
func (p *localPoller) read(s *polledSock) {
	s.n, s.err = 0, nil
	if err := s.rc.Read(s.read); err != nil {
		return // closed: its owner forgets it
	}
	if s.err != nil {
		if !errors.Is(s.err, batchio.ErrWouldBlock) && s.fail != nil {
			s.fail()
		}
		return
	}
	for i := range s.n {
		s.on(&p.in.Msgs[i])
	}
}
