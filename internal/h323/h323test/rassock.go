package h323test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// rasRetransmit is the RAS retransmission interval of the simulator
// components (H.225.0 §7.5 leaves the timer to the sender; real products
// use 3–5 s, tests want it short).
const rasRetransmit = 500 * time.Millisecond

// rasSocket is a component's RAS socket: it records what it sends and
// matches responses to the requests waiting for them.
type rasSocket struct {
	conn *net.UDPConn
	rec  *Recorder

	mu      sync.Mutex
	seq     int
	pending map[int]chan *h225.RasMessage
}

// listen binds a component's RAS socket and call-signalling listener on
// ip, ports chosen by the system.
func listen(t testing.TB, ip netip.Addr, rec *Recorder, what string) (*rasSocket, net.Listener) {
	t.Helper()
	u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatalf("h323test: %s RAS: %v", what, err)
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		u.Close()
		t.Fatalf("h323test: %s call signalling: %v", what, err)
	}
	rec.Port(int(addrPort(ln.Addr()).Port()), "tpkt")
	return &rasSocket{conn: u, rec: rec, pending: map[int]chan *h225.RasMessage{}, seq: 100}, ln
}

func (s *rasSocket) addr() netip.AddrPort { return addrPort(s.conn.LocalAddr()) }

func (s *rasSocket) nextSeq() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if s.seq > 65535 {
		s.seq = 1
	}
	return s.seq
}

func (s *rasSocket) sendRaw(b []byte, to netip.AddrPort) error {
	if _, err := s.conn.WriteToUDPAddrPort(b, to); err != nil {
		return err
	}
	s.rec.UDP(s.addr(), to, b)
	return nil
}

// send encodes and sends m to to.
func (s *rasSocket) send(m *h225.RasMessage, to netip.AddrPort) error {
	b, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("h323test: encode %s: %w", ras.Name(m), err)
	}
	return s.sendRaw(b, to)
}

// read returns the next RAS datagram as a Message; malformed ones come
// back with Name "malformed" and no RAS.
func (s *rasSocket) read(buf []byte) (Message, error) {
	n, from, err := s.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return Message{}, err
	}
	b := append([]byte(nil), buf[:n]...)
	m, err := rasMessage(b, unmap(from), s.addr())
	if err != nil {
		return Message{Name: "malformed", From: unmap(from), To: s.addr(), Raw: b}, nil
	}
	return m, nil
}

// deliver hands a response to the request waiting for it and reports
// whether one was.
func (s *rasSocket) deliver(r *h225.RasMessage) bool {
	seq, ok := ras.SeqNum(r)
	if !ok || ras.IsRequest(r) && r.Choice != h225.RasMessage_InfoRequestResponse {
		return false
	}
	s.mu.Lock()
	ch := s.pending[seq]
	s.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case ch <- r:
	default:
	}
	return true
}

// request sends m to to, retransmitting every rasRetransmit, until the
// matching response (RequestInProgress only extends the wait), ctx ends
// or closed is closed.
func (s *rasSocket) request(ctx context.Context, closed <-chan struct{}, m *h225.RasMessage, to netip.AddrPort) (*h225.RasMessage, error) {
	seq, _ := ras.SeqNum(m)
	ch := make(chan *h225.RasMessage, 4)
	s.mu.Lock()
	s.pending[seq] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, seq)
		s.mu.Unlock()
	}()
	b, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("h323test: encode %s: %w", ras.Name(m), err)
	}
	tick := time.NewTicker(rasRetransmit)
	defer tick.Stop()
	for {
		if err := s.sendRaw(b, to); err != nil {
			return nil, err
		}
	wait:
		select {
		case resp := <-ch:
			if resp.Choice == h225.RasMessage_RequestInProgress || !ras.Matches(m, resp) {
				goto wait
			}
			return resp, nil
		case <-tick.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("h323test: %s: %w", ras.Name(m), errors.Join(ErrTimeout, ctx.Err()))
		case <-closed:
			return nil, ErrClosed
		}
	}
}

// node is what the endpoint and the gatekeeper share: a RAS socket, a
// call-signalling listener, the party that places and answers calls, the
// log of received messages and the goroutines serving them.
type node struct {
	ras  *rasSocket
	cs   net.Listener
	p    *party
	msgs msgLog // messages received

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// init binds the sockets on ip; the party calls itself alias.
func (n *node) init(t testing.TB, ip netip.Addr, rec *Recorder, what, alias string, answer AnswerConfig) {
	n.ras, n.cs = listen(t, ip, rec, what)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.p = &party{alias: alias, mediaIP: ip, rec: rec, answer: answer,
		incoming: make(chan *Call, 16), wg: &n.wg}
}

// run serves RAS (every message is logged, then given to handle) and
// call-signalling connections (each given to serve) until shutdown.
func (n *node) run(handle func(Message), serve func(net.Conn)) {
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		buf := make([]byte, 4096)
		for {
			m, err := n.ras.read(buf)
			if err != nil {
				return
			}
			n.msgs.add(m)
			if m.RAS != nil {
				handle(m)
			}
		}
	}()
	go func() {
		defer n.wg.Done()
		for {
			conn, err := n.cs.Accept()
			if err != nil {
				return
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				serve(conn)
			}()
		}
	}()
}

// incoming returns the next call the party answered.
func (n *node) incoming(ctx context.Context) (*Call, error) {
	select {
	case c := <-n.p.incoming:
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("h323test: no incoming call: %w", errors.Join(ErrTimeout, ctx.Err()))
	}
}

// shutdown stops serving and waits for the goroutines.
func (n *node) shutdown() {
	n.cancel()
	n.ras.conn.Close()
	n.cs.Close()
	n.wg.Wait()
}
