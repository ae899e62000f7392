package ladder

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Filter selects the messages of a live trace. Empty fields match all.
type Filter struct {
	// User matches when the start line, From or To contains it
	// (case-insensitive), e.g. "1001" or "alice@example.com".
	User string
	// Address matches the remote address: an IP, or IP:port.
	Address string
	// PerSecond caps the messages delivered per second; beyond it they
	// are counted in Subscription.Dropped. Default 50.
	PerSecond int
	// Buffer is the channel's capacity. Default 64.
	Buffer int
}

// Subscription is one live trace: every observed message that matches
// its filter, masked, until Cancel.
type Subscription struct {
	C       <-chan Message
	c       chan Message
	f       Filter
	addr    netip.Addr
	port    uint16
	user    string
	s       *Store
	sec     atomic.Int64 // the second of the current rate window
	n       atomic.Int64 // messages in it
	dropped atomic.Uint64
	done    atomic.Bool
}

// Dropped returns how many matching messages were not delivered (rate
// bound or a full channel).
func (sub *Subscription) Dropped() uint64 { return sub.dropped.Load() }

// Subscribe starts a live trace.
func (s *Store) Subscribe(f Filter) *Subscription {
	if f.PerSecond <= 0 {
		f.PerSecond = 50
	}
	if f.Buffer <= 0 {
		f.Buffer = 64
	}
	sub := &Subscription{c: make(chan Message, f.Buffer), f: f, s: s, user: strings.ToLower(f.User)}
	sub.C = sub.c
	if ap, err := netip.ParseAddrPort(f.Address); err == nil {
		sub.addr, sub.port = ap.Addr().Unmap(), ap.Port()
	} else if a, err := netip.ParseAddr(f.Address); err == nil {
		sub.addr = a.Unmap()
	}
	s.subsMu.Lock()
	var next []*Subscription
	if cur := s.subs.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, sub)
	s.subs.Store(&next)
	s.subsMu.Unlock()
	return sub
}

// Cancel ends the trace. Its channel stays open (a publisher may hold
// it): a message already being delivered may still arrive. Safe to call
// twice.
func (sub *Subscription) Cancel() {
	if !sub.done.CompareAndSwap(false, true) {
		return
	}
	s := sub.s
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	cur := s.subs.Load()
	if cur == nil {
		return
	}
	next := slices.DeleteFunc(slices.Clone(*cur), func(x *Subscription) bool { return x == sub })
	s.subs.Store(&next)
}

// Subscribers returns how many live traces run.
func (s *Store) Subscribers() int {
	if cur := s.subs.Load(); cur != nil {
		return len(*cur)
	}
	return 0
}

// allow counts one message against the rate bound; false (and counted
// as dropped) beyond it.
func (sub *Subscription) allow() bool {
	if sub.done.Load() {
		return false
	}
	now := time.Now().Unix()
	if sub.sec.Swap(now) != now {
		sub.n.Store(0)
	}
	if sub.n.Add(1) > int64(sub.f.PerSecond) {
		sub.dropped.Add(1)
		return false
	}
	return true
}

// deliver hands m to the reader, or counts it dropped when the channel is
// full: a slow reader never holds up a socket.
func (sub *Subscription) deliver(m Message) {
	select {
	case sub.c <- m:
	default:
		sub.dropped.Add(1)
	}
}

// match tells whether a message from or to remote is one the trace asks
// for (masking changes neither the start line nor From and To).
func (sub *Subscription) match(remote netip.AddrPort, msg []byte) bool {
	if sub.addr.IsValid() {
		if remote.Addr().Unmap() != sub.addr || (sub.port != 0 && remote.Port() != sub.port) {
			return false
		}
	} else if sub.f.Address != "" {
		return false
	}
	if sub.user == "" {
		return true
	}
	for _, v := range [][]byte{startLine(msg), headerValue(msg, "From", "f"), headerValue(msg, "To", "t")} {
		if bytes.Contains(bytes.ToLower(v), []byte(sub.user)) {
			return true
		}
	}
	return false
}
