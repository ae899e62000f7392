//go:build linux

package tunnel

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

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
	set  *batchio.EpollSet
	done chan struct{}

	mu   sync.Mutex // guards next and the writes of socks
	next uint32
	// socks is copied on write, so the poller's goroutine looks sockets
	// up without a lock that add or remove could hold.
	socks atomic.Pointer[map[uint32]*polledSock]

	in *batchio.Batch // owned by the poller's goroutine
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

// newLocalPoller starts a poller; stop ends it.
func newLocalPoller() (*localPoller, error) {
	set, err := batchio.NewEpollSet(64)
	if err != nil {
		return nil, err
	}
	p := &localPoller{set: set, done: make(chan struct{}), in: batchio.NewBatch(pollBatch)}
	p.socks.Store(&map[uint32]*polledSock{})
	go p.run()
	return p, nil
}

// stop ends the poller's goroutine and waits for it.
func (p *localPoller) stop() {
	p.set.Stop()
	<-p.done
	p.set.Close()
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
	old := *p.socks.Load()
	for {
		p.next++
		if _, used := old[p.next]; p.next != batchio.EpollStopID && !used {
			break
		}
	}
	s.id = p.next
	if err := p.set.Add(rc, s.id); err != nil {
		return nil, err
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
		events, err := p.set.Wait()
		if err != nil {
			return
		}
		socks := *p.socks.Load()
		for _, ev := range events {
			if ev.Fd == batchio.EpollStopID {
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
