//go:build linux

package batchio

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// EpollSet is a level-triggered epoll instance over sockets that one
// goroutine waits on in Go's network poller (an epoll descriptor is
// readable while it has events), not in a blocking epoll_wait that would
// hold a thread and hand its P over. The TURN relay sockets and the tunnel's
// local sockets are read this way: one wake-up per set of ready sockets
// instead of one per datagram and socket, and no read that finds a socket
// empty.
//
// The sockets stay in Go's network poller too (for their writes); closing
// one takes it out of the set.
type EpollSet struct {
	mu     sync.Mutex // guards closed: no Add or Stop on closed descriptors
	closed bool
	epfd   int
	ep     *os.File        // epfd
	rc     syscall.RawConn // of ep
	wake   int             // eventfd: Stop
	events []unix.EpollEvent
	n      int
	err    error
	waitFn func(fd uintptr) bool
}

// EpollStopID is the event data Wait reports once Stop was called; Add
// never takes it.
const EpollStopID = 0

// NewEpollSet makes a set whose Wait reports at most n events.
func NewEpollSet(n int) (*EpollSet, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, err
	}
	err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: EpollStopID})
	if err == nil {
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
	s := &EpollSet{epfd: epfd, ep: ep, rc: rc, wake: wake, events: make([]unix.EpollEvent, max(n, 1))}
	s.waitFn = func(fd uintptr) bool {
		s.n, s.err = unix.EpollWait(int(fd), s.events, 0)
		return s.err != nil || s.n > 0 // else wait in the network poller
	}
	return s, nil
}

// Add reports the socket of rc, when it has datagrams to read, with id as
// the event's Fd field; id must not be EpollStopID. It fails with
// net.ErrClosed once the set is closed.
func (s *EpollSet) Add(rc syscall.RawConn, id uint32) error {
	if id == EpollStopID {
		return errors.New("batchio: epoll id 0 is reserved")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cerr = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, int(fd), &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(id)})
	}); err != nil {
		return err
	}
	return cerr
}

// Wait blocks until sockets are ready or Stop was called and returns
// their events, valid until the next Wait. It fails only when the set
// is closed or broken.
func (s *EpollSet) Wait() ([]unix.EpollEvent, error) {
	for {
		if err := s.rc.Read(s.waitFn); err != nil {
			return nil, err
		}
		if errors.Is(s.err, unix.EINTR) {
			continue
		}
		if s.err != nil {
			return nil, s.err
		}
		return s.events[:s.n], nil
	}
}

// Stop makes every Wait from now on report EpollStopID among its events.
func (s *EpollSet) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		one := [8]byte{1}
		_, _ = unix.Write(s.wake, one[:])
	}
}

// Close releases the set, once its waiter has returned; Add fails from
// then on.
func (s *EpollSet) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	_ = unix.Close(s.wake)
	_ = s.ep.Close()
}
