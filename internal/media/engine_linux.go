//go:build linux

package media

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/portico-edge/portico/internal/batchio"
	"github.com/portico-edge/portico/internal/media/rtp"
)

// sysSock is the Linux socket state of an endpoint.
type sysSock struct {
	fd int
	id uint32
	w  *worker
}

// wakeID marks the worker's eventfd in epoll events.
const wakeID = -1

// maxChunks bounds the socket table: 262,144 sockets.
const maxChunks = 256

// engine runs epoll workers. Endpoints are found from epoll events through
// a slot table read without locks.
type engine struct {
	r       *Relay
	workers []*worker
	running atomic.Bool
	stop    atomic.Bool

	tab *slots[endpoint]

	// held counts the workers waiting with waitHeld; at most maxHeld
	// (GOMAXPROCS-1) may, so that one P always stays free for the rest of
	// the process (signalling, the control plane) while media flows.
	held    atomic.Int32
	maxHeld int32
}

// holdP reports whether a worker may start waiting with waitHeld, taking
// one of the maxHeld places; unholdP gives it back.
func (e *engine) holdP() bool {
	if e.held.Add(1) <= e.maxHeld {
		return true
	}
	e.held.Add(-1)
	return false
}

func (e *engine) unholdP() { e.held.Add(-1) }

type worker struct {
	e      *engine
	epfd   int
	efd    int             // eventfd that wakes the worker (stop, sockets to close)
	file   *os.File        // epfd registered with Go's network poller
	rc     syscall.RawConn // waits for epfd readiness without blocking a thread
	n      int
	parked bool // waitFn found nothing and the worker parked
	waitFn func(fd uintptr) bool
	events []unix.EpollEvent
	batch  *batchio.Batch
	// targets holds, per slot of batch, the leg a multiplexed datagram
	// belongs to (serveMux).
	targets []*endpoint
	rep     rtp.Report
	t       tally
	// flushed is when t was last added to the metrics (unix ns).
	flushed int64

	mu      sync.Mutex
	closing []*endpoint
	pending atomic.Int32 // len(closing), read without the lock
}

func newEngine(r *Relay) (*engine, error) {
	e := &engine{r: r, tab: newSlots[endpoint](maxChunks), maxHeld: int32(runtime.GOMAXPROCS(0) - 1)}
	for i := 0; i < r.cfg.Workers; i++ {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			e.close()
			return nil, fmt.Errorf("media: epoll: %w", err)
		}
		w := &worker{e: e, epfd: fd, efd: -1, events: make([]unix.EpollEvent, 256), batch: batchio.NewBatch(r.cfg.BatchSize), targets: make([]*endpoint, r.cfg.BatchSize)}
		e.workers = append(e.workers, w)
		if w.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			e.close()
			return nil, fmt.Errorf("media: eventfd: %w", err)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeID}
		if err := unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, w.efd, &ev); err != nil {
			e.close()
			return nil, fmt.Errorf("media: epoll add eventfd: %w", err)
		}
		// The epoll fd itself is pollable: Go's scheduler parks an idle
		// worker goroutine until it is readable (waitPoller).
		unix.SetNonblock(fd, true)
		w.file = os.NewFile(uintptr(fd), "epoll")
		if w.rc, err = w.file.SyscallConn(); err != nil {
			e.close()
			return nil, fmt.Errorf("media: epoll poller: %w", err)
		}
		w.waitFn = func(fd uintptr) bool {
			var err error
			w.n, err = unix.EpollWait(int(fd), w.events, 0)
			if err != nil {
				w.n = 0
				return err != unix.EINTR
			}
			if w.n == 0 {
				w.parked = true
				w.flush() // about to park: leave no count behind
			}
			return w.n > 0
		}
	}
	return e, nil
}

func (e *engine) get(id uint32) *endpoint { return e.tab.get(id) }

// slot files ep in the table; epoll events name it by its slot. Workers
// see it only once its socket is added to epoll, after ep.sys.id is set.
func (e *engine) slot(ep *endpoint) error {
	id, ok := e.tab.put(ep)
	if !ok {
		return errors.New("media: socket table full")
	}
	ep.sys.id = id
	return nil
}

func (e *engine) unslot(ep *endpoint) { e.tab.release(ep.sys.id, ep) }

// openUDP binds a non-blocking UDP socket with the configured buffers.
func openUDP(local netip.AddrPort, buf int) (sysSock, error) { return openUDPSock(local, buf, false) }

// openUDPFree binds like openUDP with IP_FREEBIND: the address need not be
// configured yet (a standby's sockets on its peer's VIP).
func openUDPFree(local netip.AddrPort, buf int) (sysSock, error) {
	return openUDPSock(local, buf, true)
}

func openUDPSock(local netip.AddrPort, buf int, freebind bool) (sysSock, error) {
	family := unix.AF_INET
	if local.Addr().Is6() && !local.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return sysSock{fd: -1}, fmt.Errorf("socket: %w", err)
	}
	if buf > 0 {
		// SO_RCVBUFFORCE passes net.core.rmem_max when privileged.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, buf) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, buf)
		}
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, buf) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, buf)
		}
	}
	if freebind {
		if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1); err != nil {
			unix.Close(fd)
			return sysSock{fd: -1}, fmt.Errorf("IP_FREEBIND: %w", err)
		}
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(local.Port()), Addr: local.Addr().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(local.Port()), Addr: local.Addr().As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return sysSock{fd: -1}, fmt.Errorf("bind %v: %w", local, err)
	}
	return sysSock{fd: fd}, nil
}

func (s sysSock) registered() bool { return s.w != nil }

func closeSock(s sysSock) {
	if s.fd >= 0 {
		unix.Close(s.fd)
	}
}

// add registers ep with the worker its stream belongs to.
func (e *engine) add(ep *endpoint) error {
	if err := e.slot(ep); err != nil {
		return err
	}
	w := e.workers[ep.st.worker%len(e.workers)]
	ep.sys.w = w
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ep.sys.id)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, ep.sys.fd, &ev); err != nil {
		e.unslot(ep)
		return fmt.Errorf("media: epoll add: %w", err)
	}
	return nil
}

// remove unregisters ep. Its fd is closed by its worker after the current
// round of events, so a worker never reads a closed (or reused) fd.
func (e *engine) remove(ep *endpoint) {
	if ep.dead.Swap(true) {
		return
	}
	w := ep.sys.w
	if w == nil {
		closeSock(ep.sys)
		ep.ports.done()
		return
	}
	unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, ep.sys.fd, nil)
	if !e.running.Load() {
		e.finish(ep)
		return
	}
	w.mu.Lock()
	// One wake-up per batch: a list that was not empty has a wake-up on
	// its way already, and the worker drains the whole list when it comes
	// (a session's sockets, all on one worker, close with one wake-up).
	first := len(w.closing) == 0
	w.closing = append(w.closing, ep)
	w.pending.Store(int32(len(w.closing)))
	w.mu.Unlock()
	if first {
		w.wake()
	}
}

func (e *engine) finish(ep *endpoint) {
	e.unslot(ep)
	closeSock(ep.sys)
	ep.ports.done()
}

// run starts the workers and blocks until stop is set.
func (e *engine) run(wg *sync.WaitGroup) {
	e.running.Store(true)
	for _, w := range e.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop()
		}()
	}
}

// close releases the epoll fds; the workers must have returned.
func (e *engine) close() {
	e.running.Store(false)
	for _, w := range e.workers {
		w.drainClosing()
		if w.file != nil {
			w.file.Close()
		} else {
			unix.Close(w.epfd)
		}
		if w.efd >= 0 {
			unix.Close(w.efd)
		}
	}
}

// stopAll makes every worker return.
func (e *engine) stopAll() {
	e.stop.Store(true)
	for _, w := range e.workers {
		w.wake()
	}
}

var one = [8]byte{1}

func (w *worker) wake() {
	if w.efd >= 0 {
		unix.Write(w.efd, one[:])
	}
}

func (w *worker) drainClosing() {
	w.mu.Lock()
	list := w.closing
	w.closing = nil
	w.pending.Store(0)
	w.mu.Unlock()
	for _, ep := range list {
		w.e.finish(ep)
	}
}

// flushEvery bounds how stale the packet metrics may be while traffic
// flows. Adding them on every wake-up made the workers contend for the
// counters' cache lines; a worker about to park flushes at once.
const flushEvery = int64(50 * time.Millisecond)

func (w *worker) flush() {
	if w.t != (tally{}) {
		w.t.flush(w.e.r.m)
	}
}

// busyWaitMs is how long (ms) a worker that has just served packets waits
// for the next ones with waitHeld; yieldEvery is how often such a worker
// goes through the network poller instead (waitPoller).
const (
	busyWaitMs = 2
	yieldEvery = int64(time.Millisecond)
)

// waitHeld blocks in epoll_wait for at most busyWaitMs without telling the
// Go scheduler: the thread keeps its P, so a wake-up is one return from
// the system call, with no network poller, no hand-off of the P and no
// other thread woken. It returns 0 on timeout and -1 when interrupted (a
// preemption or profiling signal).
func (w *worker) waitHeld() int {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(w.epfd),
		uintptr(unsafe.Pointer(&w.events[0])), uintptr(len(w.events)), busyWaitMs, 0, 0)
	if errno != 0 {
		return -1
	}
	return int(n)
}

// waitPoller returns what is ready now or else parks the goroutine on Go's
// network poller until the epoll fd is readable; parking runs the
// scheduler, which polls the network for every other goroutine of the
// process and may run them on this P.
func (w *worker) waitPoller() (n int, parked bool, err error) {
	w.parked = false
	err = w.rc.Read(w.waitFn)
	return w.n, w.parked, err
}

// hasPackets reports whether the first n events include a socket, not only
// the worker's eventfd.
func (w *worker) hasPackets(n int) bool {
	for i := 0; i < n; i++ {
		if w.events[i].Fd != wakeID {
			return true
		}
	}
	return false
}

// loop serves the worker's sockets. While packets keep coming it waits
// for them with waitHeld; every yieldEvery it waits with waitPoller
// instead (and, when that found packets waiting without parking, yields
// with Gosched), so that other goroutines run and the network poller is
// consulted while the worker holds its P. After busyWaitMs without
// packets it parks on the network poller, and it waits with waitHeld again
// only once two wake-ups come less than busyWaitMs apart.
func (w *worker) loop() {
	var drain [8]byte
	busy := false
	var now, yielded int64 // now: when the last wait returned (unix ns)
	var lastPkt int64      // when the last wait that brought packets returned
	for !w.e.stop.Load() {
		var n int
		if busy && now-yielded < yieldEvery {
			if n = w.waitHeld(); n == 0 {
				busy = false // idle: the next wait parks
				w.e.unholdP()
				continue
			}
			now = time.Now().UnixNano()
		} else {
			var parked bool
			var err error
			if n, parked, err = w.waitPoller(); err != nil {
				w.e.r.log.Error("epoll wait failed", "err", err)
				if busy {
					w.e.unholdP()
				}
				return
			}
			if busy && !parked {
				runtime.Gosched()
			}
			// A worker whose packets come further apart than busyWaitMs
			// stays on the poller: a held wait would only time out.
			// Only wake-ups that brought packets count: the eventfd that
			// call setup and teardown ring must not hold a P.
			now = time.Now().UnixNano()
			pkts := w.hasPackets(n)
			want := pkts && now-lastPkt < busyWaitMs*int64(time.Millisecond)
			if pkts {
				lastPkt = now
			}
			if want && !busy {
				busy = w.e.holdP()
			} else if !want && busy {
				busy = false
				w.e.unholdP()
			}
			yielded = now
		}
		for i := 0; i < n; i++ {
			if w.events[i].Fd == wakeID {
				unix.Read(w.efd, drain[:])
				continue
			}
			ep := w.e.get(uint32(w.events[i].Fd))
			if ep == nil || ep.dead.Load() {
				continue
			}
			w.serve(ep, now)
		}
		if now-w.flushed >= flushEvery {
			w.flush()
			w.flushed = now
		}
		if w.pending.Load() > 0 {
			w.drainClosing()
		}
	}
	if busy {
		w.e.unholdP()
	}
	w.flush()
}

// serve moves what is waiting on ep to its opposite socket. It reads at most
// a few batches so that one busy socket does not starve the others.
func (w *worker) serve(ep *endpoint, now int64) {
	if ep.muxSock {
		w.serveMux(ep, now)
		return
	}
	b := w.batch
	for round := 0; round < 4; round++ {
		n, err := b.RecvFD(ep.sys.fd, 0)
		if err != nil {
			return
		}
		w.forward(ep, b, 0, n, now)
		if n < b.Len() {
			return
		}
	}
}

// serveMux reads an interface's multiplexed socket: each datagram goes,
// stripped of its multiplexID, through the leg the ID selects, runs of
// datagrams for the same leg in one sendmmsg.
func (w *worker) serveMux(mux *endpoint, now int64) {
	b := w.batch
	for round := 0; round < 4; round++ {
		n, err := b.RecvFD(mux.sys.fd, 0)
		if err != nil {
			return
		}
		for i := 0; i < n; i++ {
			m := &b.Msgs[i]
			w.targets[i] = w.e.r.demux(mux, m.Buf, &m.N, &w.t)
		}
		for i := 0; i < n; {
			j := i + 1
			for j < n && w.targets[j] == w.targets[i] {
				j++
			}
			if w.targets[i] != nil {
				w.forward(w.targets[i], b, i, j, now)
			}
			i = j
		}
		clear(w.targets[:n])
		if n < b.Len() {
			return
		}
	}
}

// forward admits, observes and sends the datagrams in slots [lo, hi) of b
// that arrived for ep.
func (w *worker) forward(ep *endpoint, b *batchio.Batch, lo, hi int, now int64) {
	out := ep.out
	var dst netip.AddrPort
	fd := -1
	var ms *muxSend
	if out != nil && !out.dead.Load() {
		dst = out.destination()
		fd = out.sys.fd
		if ms = out.muxOut.Load(); ms != nil && ms.sock != nil {
			fd = ms.sock.sys.fd
		}
	}
	k, admitted, keep := lo, 0, 0
	var bytes, fwdBytes uint64
	for i := lo; i < hi; i++ {
		msg := &b.Msgs[i]
		if !ep.admit(msg, now, &w.t) {
			continue
		}
		if ep.isKeepAlive(msg.Data()) {
			keep++ // it opened or refreshed the NAT binding; nothing to relay
			continue
		}
		admitted++
		bytes += uint64(msg.N)
		if ep.rtcp || msg.N > 1 && msg.Buf[1] >= 192 && msg.Buf[1] <= 223 {
			ep.observe(msg.Data(), now, &w.rep)
		}
		if !dst.IsValid() {
			w.t.noDest++
			continue
		}
		fwdBytes += uint64(msg.N)
		if ms != nil && ms.id != 0 && !prefix(msg.Buf, &msg.N, ms.id) {
			w.t.sendErrors++
			continue
		}
		msg.Addr = dst
		if k != i {
			b.Msgs[k], b.Msgs[i] = b.Msgs[i], b.Msgs[k]
		}
		k++
	}
	if admitted > 0 || keep > 0 {
		ep.lastRx.Store(now)
	}
	if admitted > 0 {
		ep.packets.Add(uint64(admitted))
		ep.bytes.Add(bytes)
		if w.e.r.fast != nil {
			w.e.r.fastSeen(ep)
		}
	}
	if keep > 0 {
		ep.keepAlives.Add(uint64(keep))
		w.t.keepAlives += uint64(keep)
	}
	if k == lo {
		return
	}
	sent, _ := b.SendFD(fd, lo, k)
	ep.forwarded.Add(uint64(sent))
	w.t.forwarded += uint64(sent)
	w.t.forwardedBytes += fwdBytes
	w.t.sendErrors += uint64(k - lo - sent)
}
