//go:build !linux

package media

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-edge/portico/internal/batchio"
	"github.com/portico-edge/portico/internal/media/rtp"
)

// sysSock is the portable socket state of an endpoint: a UDP conn read by
// its own goroutine.
type sysSock struct {
	c   *net.UDPConn
	reg bool
}

// engine is the portable fallback: one goroutine per socket.
type engine struct {
	r       *Relay
	wg      *sync.WaitGroup
	running atomic.Bool
	stop    atomic.Bool
	mu      sync.Mutex
	pending []*endpoint
}

func newEngine(r *Relay) (*engine, error) { return &engine{r: r}, nil }

// openUDPFree is openUDP: binding an address not configured yet is a
// Linux feature (IP_FREEBIND).
func openUDPFree(local netip.AddrPort, buf int) (sysSock, error) { return openUDP(local, buf) }

func openUDP(local netip.AddrPort, buf int) (sysSock, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
	if err != nil {
		return sysSock{}, err
	}
	if buf > 0 {
		batchio.SetBuffers(c, buf, buf)
	}
	return sysSock{c: c}, nil
}

func (s sysSock) registered() bool { return s.reg }

func closeSock(s sysSock) {
	if s.c != nil {
		s.c.Close()
	}
}

func (e *engine) add(ep *endpoint) error {
	ep.sys.reg = true
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.wg == nil {
		e.pending = append(e.pending, ep)
		return nil
	}
	e.start(ep)
	return nil
}

func (e *engine) start(ep *endpoint) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.loop(ep)
	}()
}

func (e *engine) remove(ep *endpoint) {
	if ep.dead.Swap(true) {
		return
	}
	closeSock(ep.sys)
	ep.ports.done()
}

func (e *engine) run(wg *sync.WaitGroup) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running.Store(true)
	e.wg = wg
	for _, ep := range e.pending {
		if !ep.dead.Load() {
			e.start(ep)
		}
	}
	e.pending = nil
}

func (e *engine) close() {}

func (e *engine) loop(sock *endpoint) {
	b := batchio.NewBatch(1)
	var rep rtp.Report
	var t tally
	msg := &b.Msgs[0]
	for {
		n, src, err := sock.sys.c.ReadFromUDPAddrPort(msg.Buf)
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		msg.N, msg.Addr = n, src
		ep := sock
		if sock.muxSock {
			if ep = e.r.demux(sock, msg.Buf, &msg.N, &t); ep == nil {
				t.flush(e.r.m)
				continue
			}
			n = msg.N
		}
		admitted := ep.admit(msg, now, &t)
		if admitted && ep.isKeepAlive(msg.Data()) {
			ep.lastRx.Store(now)
			ep.keepAlives.Add(1)
			t.keepAlives++
		} else if admitted {
			ep.lastRx.Store(now)
			ep.packets.Add(1)
			ep.bytes.Add(uint64(n))
			if ep.rtcp || n > 1 && msg.Buf[1] >= 192 && msg.Buf[1] <= 223 {
				ep.observe(msg.Data(), now, &rep)
			}
			var dst netip.AddrPort
			out := ep.out
			if out != nil && !out.dead.Load() {
				dst = out.destination()
			}
			switch {
			case !dst.IsValid():
				t.noDest++
			default:
				c := out.sys.c
				ok := true
				if ms := out.muxOut.Load(); ms != nil {
					if ms.sock != nil {
						c = ms.sock.sys.c
					}
					if ms.id != 0 {
						ok = prefix(msg.Buf, &msg.N, ms.id)
					}
				}
				if ok {
					_, err = c.WriteToUDPAddrPort(msg.Data(), dst)
				}
				if ok && err == nil {
					ep.forwarded.Add(1)
					t.forwarded++
					t.forwardedBytes += uint64(n)
				} else {
					t.sendErrors++
				}
			}
		}
		t.flush(e.r.m)
	}
}

func (e *engine) stopAll() { e.stop.Store(true) }
