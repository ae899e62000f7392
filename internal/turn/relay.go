package turn

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	pturn "github.com/pion/turn/v5"

	"github.com/portico-edge/portico/internal/batchio"
)

// maxBindFailures bounds how many ports in use by other programs one
// allocation tries before giving up.
const maxBindFailures = 32

// defaultConnectTimeout bounds an RFC 6062 Connect to a peer.
const defaultConnectTimeout = 10 * time.Second

// relayHandle is one relay socket (UDP) or listener (TCP allocation): its
// quota slot, its port and its live counters.
type relayHandle struct {
	a       *allocator
	user    string
	tcp     bool
	port    int
	addr    string // relayed transport address as given to the client
	closer  interface{ Close() error }
	release sync.Once

	toPeerBytes, toPeerPkts     atomic.Uint64
	fromPeerBytes, fromPeerPkts atomic.Uint64
}

func (h *relayHandle) toPeer(n int) {
	h.toPeerBytes.Add(uint64(n))
	h.toPeerPkts.Add(1)
	h.a.m.bytesToPeer.Add(float64(n))
	h.a.m.pktsToPeer.Inc()
}

func (h *relayHandle) fromPeer(n int) {
	h.fromPeerBytes.Add(uint64(n))
	h.fromPeerPkts.Add(1)
	h.a.m.bytesFromPeer.Add(float64(n))
	h.a.m.pktsFromPeer.Inc()
}

func (h *relayHandle) free() {
	h.release.Do(func() { h.a.free(h) })
}

// allocator implements pion's RelayAddressGenerator: relay sockets only in
// the configured port range, quotas enforced exactly (a slot is held from
// socket creation until the socket is closed).
type allocator struct {
	relayIP netip.Addr
	bindIP  netip.Addr
	portMin int
	portMax int
	perUser int
	total   int
	bufKB   int
	m       *metrics
	own     *atomic.Pointer[ownAddrs] // the server's; never relayed to

	mu      sync.Mutex
	udpUsed map[int]bool
	tcpUsed map[int]bool
	users   map[string]int
	count   int
	relays  map[string]*relayHandle // by relayed address string
	drained chan struct{}           // closed when count drops to 0, if waited on

	// pollers read the UDP relay sockets (relayPoller), started with the
	// first and stopped by stopPollers; pollNext picks one round-robin.
	pmu      sync.Mutex
	pollers  []*relayPoller
	pollNext int
	pollOff  bool // epoll unavailable: goroutine per socket
}

var _ pturn.RelayAddressGenerator = (*allocator)(nil)

func newAllocator(v *validated, m *metrics, own *atomic.Pointer[ownAddrs]) *allocator {
	return &allocator{
		own:     own,
		relayIP: v.relayIP,
		bindIP:  v.bindIP,
		portMin: v.Relay.PortMin,
		portMax: v.Relay.PortMax,
		perUser: v.Quota.PerUser,
		total:   v.Quota.Total,
		bufKB:   v.Listen.SocketBufferKB,
		m:       m,
		udpUsed: map[int]bool{},
		tcpUsed: map[int]bool{},
		users:   map[string]int{},
		relays:  map[string]*relayHandle{},
	}
}

// setQuota changes the quotas for allocations made from now on; existing
// ones are kept even when they are now over.
func (a *allocator) setQuota(perUser, total int) {
	a.mu.Lock()
	a.perUser, a.total = perUser, total
	a.mu.Unlock()
}

// Validate implements RelayAddressGenerator.
func (a *allocator) Validate() error { return nil }

// quotaErr reports which quota a new allocation by user would exceed.
func (a *allocator) quotaErr(user string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.quotaErrLocked(user)
}

func (a *allocator) quotaErrLocked(user string) error {
	if a.total >= 0 && a.count >= a.total {
		return errQuotaTotal
	}
	if a.perUser >= 0 && a.users[user] >= a.perUser {
		return errQuotaUser
	}
	return nil
}

func (a *allocator) family(network string) error {
	want4 := network == "udp4" || network == "tcp4"
	if a.relayIP.Is4() != want4 {
		return fmt.Errorf("%w: %s", errFamily, network)
	}
	return nil
}

// reserve takes a quota slot and a port; bind is tried on candidate ports.
//
// pion probes for an even port (EVEN-PORT, RFC 8656 §14.6) by allocating
// sockets with no user and closing them: such a probe (evenProbe) is given
// only even ports whose successor is in range and free, and is not
// subject to quotas (it holds its slot only for an instant).
func (a *allocator) reserve(user string, tcp bool, requested int, bind func(port int) (interface{ Close() error }, error)) (*relayHandle, error) {
	evenProbe := user == "" && !tcp && requested == 0
	a.mu.Lock()
	if err := a.quotaErrLocked(user); err != nil && !evenProbe {
		a.mu.Unlock()
		return nil, err
	}
	a.count++
	a.users[user]++
	a.mu.Unlock()

	h := &relayHandle{a: a, user: user, tcp: tcp}
	used := a.udpUsed
	if tcp {
		used = a.tcpUsed
	}
	try := func(port int) bool {
		a.mu.Lock()
		if used[port] {
			a.mu.Unlock()
			return false
		}
		used[port] = true
		a.mu.Unlock()
		c, err := bind(port)
		if err != nil {
			a.mu.Lock()
			delete(used, port)
			a.mu.Unlock()
			return false
		}
		h.port, h.closer = port, c
		return true
	}
	ok := false
	if requested != 0 {
		if requested < a.portMin || requested > a.portMax {
			a.unreserve(user)
			return nil, errPortRange
		}
		ok = try(requested)
	} else {
		// Random ports first, so that a block held by another program does
		// not exhaust the budget; then a scan from a random start, so that
		// a nearly full range still yields its last free ports.
		n := a.portMax - a.portMin + 1
		candidate := func(port int) bool {
			if evenProbe && (port%2 != 0 || port+1 > a.portMax) {
				return false
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			return !used[port] && !(evenProbe && used[port+1])
		}
		for i := 0; i < maxBindFailures && !ok; i++ {
			if port := a.portMin + rand.IntN(n); candidate(port) {
				ok = try(port)
			}
		}
		start, failures := rand.IntN(n), 0
		for i := 0; i < n && !ok && failures < maxBindFailures; i++ {
			if port := a.portMin + (start+i)%n; candidate(port) {
				if ok = try(port); !ok {
					failures++
				}
			}
		}
	}
	if !ok {
		a.unreserve(user)
		a.m.rejPorts.Inc()
		return nil, errNoPort
	}
	h.addr = netip.AddrPortFrom(a.relayIP, uint16(h.port)).String()
	a.mu.Lock()
	a.relays[h.addr+tcpSuffix(tcp)] = h
	a.mu.Unlock()
	return h, nil
}

func tcpSuffix(tcp bool) string {
	if tcp {
		return "/tcp"
	}
	return ""
}

func (a *allocator) unreserve(user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.unreserveLocked(user)
}

func (a *allocator) unreserveLocked(user string) {
	a.count--
	if a.users[user]--; a.users[user] <= 0 {
		delete(a.users, user)
	}
	if a.count == 0 && a.drained != nil {
		close(a.drained)
		a.drained = nil
	}
}

func (a *allocator) free(h *relayHandle) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h.tcp {
		delete(a.tcpUsed, h.port)
	} else {
		delete(a.udpUsed, h.port)
	}
	delete(a.relays, h.addr+tcpSuffix(h.tcp))
	a.unreserveLocked(h.user)
}

// lookup finds the handle of a relayed address.
func (a *allocator) lookup(relay net.Addr) *relayHandle {
	if relay == nil {
		return nil
	}
	_, tcp := relay.(*net.TCPAddr)
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.relays[relay.String()+tcpSuffix(tcp)]
}

// waitDrained returns a channel closed once no relay socket is open.
func (a *allocator) waitDrained() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := make(chan struct{})
	if a.count == 0 {
		close(ch)
		return ch
	}
	if a.drained == nil {
		a.drained = ch
	}
	return a.drained
}

// nextPoller returns the poller for a new relay socket, starting the
// pollers (one per two CPUs) on first use; nil when none can run.
func (a *allocator) nextPoller() *relayPoller {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	if a.pollOff {
		return nil
	}
	if a.pollers == nil {
		for i := 0; i < max(1, runtime.GOMAXPROCS(0)/2); i++ {
			p, err := newRelayPoller()
			if err != nil {
				break
			}
			a.pollers = append(a.pollers, p)
		}
		if a.pollers == nil {
			a.pollOff = true
			return nil
		}
	}
	a.pollNext = (a.pollNext + 1) % len(a.pollers)
	return a.pollers[a.pollNext]
}

// stopPollers ends the pollers once their relay sockets are closed; new
// relay sockets start new ones.
func (a *allocator) stopPollers() {
	a.pmu.Lock()
	ps := a.pollers
	a.pollers = nil
	a.pmu.Unlock()
	for _, p := range ps {
		p.stop()
	}
}

// closeAll closes every relay socket (shutdown).
func (a *allocator) closeAll() {
	a.mu.Lock()
	hs := make([]*relayHandle, 0, len(a.relays))
	for _, h := range a.relays {
		hs = append(hs, h)
	}
	a.mu.Unlock()
	for _, h := range hs {
		_ = h.closer.Close()
	}
}

// AllocatePacketConn implements RelayAddressGenerator (UDP relays).
func (a *allocator) AllocatePacketConn(conf pturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if err := a.family(conf.Network); err != nil {
		return nil, nil, err
	}
	var pc net.PacketConn
	h, err := a.reserve(conf.UserID, false, conf.RequestedPort, func(port int) (interface{ Close() error }, error) {
		c, err := net.ListenUDP(conf.Network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.bindIP, uint16(port))))
		if err != nil {
			return nil, err
		}
		setBuffers(c, a.bufKB)
		pc = newRelayPacketConn(c)
		return c, nil
	})
	if err != nil {
		return nil, nil, err
	}
	rc := pc.(*relayPacketConn)
	rc.h = h
	h.closer = rc
	return rc, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.relayIP, uint16(h.port))), nil
}

// AllocateListener implements RelayAddressGenerator (RFC 6062 TCP relays).
func (a *allocator) AllocateListener(conf pturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	if err := a.family(conf.Network); err != nil {
		return nil, nil, err
	}
	var ln net.Listener
	h, err := a.reserve(conf.UserID, true, conf.RequestedPort, func(port int) (interface{ Close() error }, error) {
		lc := net.ListenConfig{Control: reuseAddrPort}
		l, err := lc.Listen(context.Background(), conf.Network, netip.AddrPortFrom(a.bindIP, uint16(port)).String())
		if err != nil {
			return nil, err
		}
		ln = l
		return l, nil
	})
	if err != nil {
		return nil, nil, err
	}
	rl := &relayListener{Listener: ln, h: h}
	h.closer = rl
	return rl, net.TCPAddrFromAddrPort(netip.AddrPortFrom(a.relayIP, uint16(h.port))), nil
}

// AllocateConn implements RelayAddressGenerator: the outgoing TCP connection
// of an RFC 6062 Connect request, bound to the allocation's relay port.
func (a *allocator) AllocateConn(conf pturn.AllocateConnConfig) (net.Conn, error) {
	if a.own.Load().hasAddr(conf.RemoteAddr) {
		a.m.peersDenied.Inc()
		return nil, errOwnAddress
	}
	h := a.lookup(conf.LocalAddr)
	local := conf.LocalAddr
	if ta, ok := conf.LocalAddr.(*net.TCPAddr); ok {
		local = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a.bindIP, uint16(ta.Port)))
	}
	d := net.Dialer{LocalAddr: local, Control: reuseAddrPort, Timeout: defaultConnectTimeout}
	c, err := d.Dial(conf.Network, conf.RemoteAddr.String())
	if err != nil {
		return nil, err
	}
	if h == nil {
		return c, nil
	}
	return &relayConn{Conn: c, h: h}, nil
}

func reuseAddrPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// relayPacketConn counts what crosses a UDP relay socket as it passes. It
// reads the socket in batches (recvmmsg) and sends datagrams from peers
// that have a channel to a UDP client itself as ChannelData (RFC 8656
// §12.5), and those from peers with only a permission as Data indications
// (§11.4), in batches (sendmmsg) and without allocating; the rest goes to
// the engine. Only the engine's single reader goroutine calls ReadFrom,
// and it owns the batches and the writers to the clients.
type relayPacketConn struct {
	*net.UDPConn
	h  *relayHandle
	in batchReader
	ob *batchio.Batch // datagrams to the client, slots [0, on) pending on ow
	on int
	ow *batchio.Conn
	// tid makes Data indication transaction IDs.
	tid *rand.ChaCha8

	// peers: channels by peer; perms: peers' addresses with a permission;
	// client: where Data indications go (absent for stream clients).
	peers  cow[netip.AddrPort, peerChannel]
	perms  cow[netip.Addr, struct{}]
	client atomic.Pointer[peerChannel]

	wmu     sync.Mutex
	writers map[*net.UDPConn]*batchio.Conn // one per listener socket, used by the reader

	// bye is the response to the Refresh that released the allocation
	// (release.go), sent once the engine has deleted it.
	bye atomic.Pointer[farewell]

	// pollState: when a relayPoller reads the socket, the engine's
	// goroutine reads what the poller hands it instead.
	pollState
}

// peerChannel is where a peer's datagrams go: a channel (or, number 0, Data
// indications) to a UDP client.
type peerChannel struct {
	number uint16
	client netip.AddrPort
	out    *batchio.Conn // writes on the listener socket the client talks to
}

// maxRelayDatagram is the largest peer datagram relayed; the engine's own
// buffer is 1600 bytes, so larger ones were truncated there too.
const maxRelayDatagram = 1600

// newRelayPacketConn wraps c; its batches are allocated when first used,
// so that an allocation that relays nothing (or an EVEN-PORT probe) costs
// little.
func newRelayPacketConn(c *net.UDPConn) *relayPacketConn {
	in, _ := batchio.NewConn(c) // only fails for a closed socket, and then reads fail
	rc := &relayPacketConn{UDPConn: c, in: batchReader{in: in, size: relayBatch}, writers: map[*net.UDPConn]*batchio.Conn{}}
	rc.gone = make(chan struct{})
	return rc
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// writer returns this relay's writer on the listener socket out.
func (c *relayPacketConn) writer(out *net.UDPConn) *batchio.Conn {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w := c.writers[out]
	if w == nil {
		w, _ = batchio.NewConn(out)
		c.writers[out] = w
	}
	return w
}

func (c *relayPacketConn) addPeer(peer netip.AddrPort, number uint16, client netip.AddrPort, out *net.UDPConn) {
	c.peers.store(unmapAP(peer), peerChannel{number: number, client: unmapAP(client), out: c.writer(out)})
}

func (c *relayPacketConn) removePeer(peer netip.AddrPort, number uint16) {
	c.peers.deleteIf(unmapAP(peer), func(ch peerChannel) bool { return ch.number == number })
}

// setClient names the UDP client of the allocation, for Data indications.
func (c *relayPacketConn) setClient(client netip.AddrPort, out *net.UDPConn) {
	c.client.Store(&peerChannel{client: unmapAP(client), out: c.writer(out)})
}

func (c *relayPacketConn) addPerm(ip netip.Addr) {
	c.perms.store(ip.Unmap(), struct{}{})
}

func (c *relayPacketConn) removePerm(ip netip.Addr) {
	c.perms.deleteIf(ip.Unmap(), func(struct{}) bool { return true })
}

func (c *relayPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.poller.Load() != nil {
		return c.readSlow(p)
	}
	for {
		if !c.in.buffered() {
			c.flush()
			if c.in.rb == nil {
				// The first datagram: wait for it before the batch is
				// allocated, as the socket may move to a poller meanwhile.
				if err := waitReadable(c.UDPConn); err != nil {
					return 0, nil, err
				}
			}
			if c.handOver() {
				return c.readSlow(p)
			}
		}
		m, err := c.in.read()
		if err != nil {
			return 0, nil, err
		}
		m.N = min(m.N, maxRelayDatagram)
		c.h.fromPeer(m.N)
		if c.relay(m) {
			continue
		}
		c.flush()
		return copy(p, m.Data()), net.UDPAddrFromAddrPort(m.Addr), nil
	}
}

// outQueue gives out slots of outgoing batches to clients: the relay
// socket's own (its goroutine reads it) or its poller's.
type outQueue interface {
	queue(w *batchio.Conn, client netip.AddrPort) *batchio.Message
}

// relay queues a peer's datagram for its client as ChannelData when the
// peer has a channel, or as a Data indication when it has a permission,
// reporting whether it did; the engine handles the others.
func (c *relayPacketConn) relay(m *batchio.Message) bool { return c.relayVia(c, m) }

// relayVia is relay, queueing on q.
func (c *relayPacketConn) relayVia(q outQueue, m *batchio.Message) bool {
	if ch, ok := c.peers.load()[m.Addr]; ok {
		slot := q.queue(ch.out, ch.client)
		slot.N = len(appendChannelData(slot.Buf[:0], ch.number, m.Data()))
		return true
	}
	if _, ok := c.perms.load()[m.Addr.Addr()]; !ok {
		return false
	}
	cl := c.client.Load()
	if cl == nil {
		return false
	}
	if c.tid == nil {
		var seed [32]byte
		_, _ = crand.Read(seed[:])
		c.tid = rand.NewChaCha8(seed)
	}
	var tid [12]byte
	_, _ = c.tid.Read(tid[:])
	slot := q.queue(cl.out, cl.client)
	slot.N = len(appendDataIndication(slot.Buf[:0], &tid, m.Addr, m.Data()))
	return true
}

// queue returns the next slot of the outgoing batch, for client on w,
// sending what is pending first when it is for another socket or the
// batch is full.
func (c *relayPacketConn) queue(w *batchio.Conn, client netip.AddrPort) *batchio.Message {
	if c.ob == nil {
		c.ob = batchio.NewBatch(relayBatch)
	}
	if c.on == len(c.ob.Msgs) || (c.on > 0 && c.ow != w) {
		c.flush()
	}
	c.ow = w
	m := &c.ob.Msgs[c.on]
	m.Addr = client
	c.on++
	return m
}

// flush sends the pending datagrams to the client. A send error (the
// listener closed, a full buffer) drops them, as UDP would.
func (c *relayPacketConn) flush() {
	if c.on == 0 {
		return
	}
	_, _ = c.ow.WriteBatch(c.ob, c.on)
	c.on = 0
}

// sendToPeer relays data from the client to peer from the relay socket,
// unless peer is one of the node's own transport addresses.
func (c *relayPacketConn) sendToPeer(data []byte, peer netip.AddrPort) {
	if c.h.a.own.Load().has(peer) {
		c.h.a.m.peersDenied.Inc()
		return
	}
	if n, err := c.UDPConn.WriteToUDPAddrPort(data, peer); err == nil {
		c.h.toPeer(n)
	}
}

// WriteTo sends a client's datagram to a peer, unless the peer is one of
// the node's own transport addresses (a Send indication or ChannelData
// after a permission for the node's IP): that one is dropped and counted.
func (c *relayPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.h.a.own.Load().hasAddr(addr) {
		c.h.a.m.peersDenied.Inc()
		return len(p), nil
	}
	n, err := c.UDPConn.WriteTo(p, addr)
	if err == nil {
		c.h.toPeer(n)
	}
	return n, err
}

func (c *relayPacketConn) Close() error {
	err := c.UDPConn.Close()
	c.goneOnce.Do(func() { close(c.gone) })
	if p := c.poller.Load(); p != nil {
		p.remove(c)
	}
	c.h.free()
	if errors.Is(err, net.ErrClosed) {
		return nil // closed by the max-age timer, CloseAllocation or shutdown
	}
	return err
}

// relayListener is a TCP allocation's listener; accepted peer connections
// are counted.
type relayListener struct {
	net.Listener
	h *relayHandle
}

func (l *relayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &relayConn{Conn: c, h: l.h}, nil
}

func (l *relayListener) Close() error {
	err := l.Listener.Close()
	l.h.free()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// relayConn is one peer TCP connection of a TCP allocation.
type relayConn struct {
	net.Conn
	h *relayHandle
}

func (c *relayConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.h.fromPeer(n)
	}
	return n, err
}

func (c *relayConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.h.toPeer(n)
	}
	return n, err
}
