package ladder

import (
	"container/list"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Interfaces a message crosses.
const (
	External = "external"
	Internal = "internal"
)

// Direction is whether Portico received or sent a message.
type Direction uint8

// Directions.
const (
	In  Direction = iota + 1 // received by Portico
	Out                      // sent by Portico
)

func (d Direction) String() string {
	if d == Out {
		return "out"
	}
	return "in"
}

// Message is one signalling message as it crossed Portico's sockets.
type Message struct {
	// Index numbers a call's messages from 0 in the order they were seen.
	Index     int            `json:"index"`
	Time      time.Time      `json:"time"`
	Protocol  string         `json:"protocol"`  // "sip"
	Interface string         `json:"interface"` // external or internal
	Direction string         `json:"direction"` // in (received) or out (sent)
	Transport string         `json:"transport"` // udp, tcp, tls, ws, wss
	Local     netip.AddrPort `json:"local"`
	Remote    netip.AddrPort `json:"remote"`
	// From and To index Ladder.Parties.
	From int `json:"from"`
	To   int `json:"to"`
	// Summary is one line: "INVITE sip:1001@example.com", "180 Ringing".
	Summary string `json:"summary"`
	// Method is the CSeq method (which request a response answers).
	Method string `json:"method"`
	// Text is the whole message, masked (Mask).
	Text string `json:"text"`
}

// Party is one lifeline of a ladder diagram.
type Party struct {
	Name    string `json:"name"`
	Address string `json:"address"` // the first address seen for it; "" when none
}

// Parties of every ladder, in lifeline order.
const (
	OutsideParty = iota
	PorticoOutside
	PorticoInside
	InsideParty
)

// Ladder is the signalling of one call.
type Ladder struct {
	Call     string    `json:"call"`
	Parties  []Party   `json:"parties"`
	Messages []Message `json:"messages"`
	// Truncated is true when messages were dropped for the per-call bound.
	Truncated bool `json:"truncated"`
}

// Config bounds a Store. Zero fields take their defaults.
type Config struct {
	// MaxCalls is how many calls are kept. Default 500.
	MaxCalls int
	// MaxCallBytes caps the message text kept for one call; later
	// messages are dropped and the ladder marked truncated. Default 256 KiB.
	MaxCallBytes int
	// MaxBytes caps the message text kept in all; the oldest calls are
	// evicted to stay under it. Default 32 MiB.
	MaxBytes int
	// MaxPending is how many dialogs are kept before the SIP edge links
	// them to a call (an INVITE it has not answered yet, or refuses
	// before it makes a call). Default 256.
	MaxPending int
}

func (c Config) withDefaults() Config {
	if c.MaxCalls <= 0 {
		c.MaxCalls = 500
	}
	if c.MaxCallBytes <= 0 {
		c.MaxCallBytes = 256 << 10
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 32 << 20
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 256
	}
	return c
}

// record is one call's messages, or a dialog's before it is linked.
type record struct {
	id        string // call ID; "" while pending
	keys      []string
	msgs      []Message
	bytes     int
	truncated bool
	elem      *list.Element
}

// Store keeps the signalling of recent calls within its bounds. It is safe
// for concurrent use; its zero value is not: use New.
type Store struct {
	cfg Config

	mu      sync.Mutex
	calls   map[string]*record // call ID -> record
	keys    map[string]*record // dialog key (SIP Call-ID) -> record
	order   *list.List         // of *record, oldest first
	bytes   int                // text kept in all
	pending int                // records not linked

	subs   atomic.Pointer[[]*Subscription]
	subsMu sync.Mutex

	stats Stats
}

// Stats counts what a Store did, for tests and metrics.
type Stats struct {
	Observed atomic.Uint64 // messages seen at the sockets
	Kept     atomic.Uint64 // messages stored
	Dropped  atomic.Uint64 // messages refused by the per-call bound
	Evicted  atomic.Uint64 // records evicted by the count or byte bounds
}

// New returns an empty store bounded by cfg.
func New(cfg Config) *Store {
	return &Store{cfg: cfg.withDefaults(), calls: map[string]*record{}, keys: map[string]*record{}, order: list.New()}
}

// Stats returns the store's counters.
func (s *Store) Stats() *Stats { return &s.stats }

// Link names the call a dialog belongs to: messages with the dialog key
// (SIP Call-ID) already kept, and all that follow, belong to call id. A
// call has one key per dialog (two for a B2BUA call).
func (s *Store) Link(id, key string) {
	if id == "" || key == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls[id]
	r := s.keys[key]
	switch {
	case c == nil && r == nil:
		c = s.newRecord()
		c.id = id
		s.calls[id] = c
	case c == nil && r.id == "":
		c = r
		c.id = id
		s.calls[id] = c
		s.pending--
	case c == nil:
		return // the key belongs to another call
	case r != nil && r != c:
		if r.id != "" {
			return
		}
		// A dialog seen before it was linked joins the call.
		for _, m := range r.msgs {
			s.append(c, m)
		}
		s.drop(r)
	}
	if s.keys[key] != c {
		s.keys[key] = c
		c.keys = append(c.keys, key)
	}
	for len(s.calls) > s.cfg.MaxCalls {
		s.evictOldest(false)
	}
}

// newRecord adds an empty record as the newest.
func (s *Store) newRecord() *record {
	r := &record{}
	r.elem = s.order.PushBack(r)
	return r
}

// drop removes r and its keys.
func (s *Store) drop(r *record) {
	for _, k := range r.keys {
		if s.keys[k] == r {
			delete(s.keys, k)
		}
	}
	if r.id != "" {
		delete(s.calls, r.id)
	} else {
		s.pending--
	}
	s.bytes -= r.bytes
	s.order.Remove(r.elem)
}

// evictOldest drops the oldest record (only a pending one when
// pendingOnly), reporting whether there was one.
func (s *Store) evictOldest(pendingOnly bool) bool {
	for e := s.order.Front(); e != nil; e = e.Next() {
		r := e.Value.(*record)
		if pendingOnly && r.id != "" {
			continue
		}
		s.drop(r)
		s.stats.Evicted.Add(1)
		return true
	}
	return false
}

// append adds m to r within the per-call bound.
func (s *Store) append(r *record, m Message) {
	if r.bytes+len(m.Text) > s.cfg.MaxCallBytes {
		r.truncated = true
		s.stats.Dropped.Add(1)
		return
	}
	r.msgs = append(r.msgs, m)
	r.bytes += len(m.Text)
	s.bytes += len(m.Text)
	s.stats.Kept.Add(1)
}

// Packet says where and when a message crossed a socket.
type Packet struct {
	Interface string    // External or Internal
	Transport string    // udp, tcp, tls, ws, wss
	Dir       Direction // In or Out
	// Time is when the message was read, or when its write began: a
	// response read is never earlier than the request it answers.
	Time          time.Time
	Local, Remote netip.AddrPort
}

// Observe takes one SIP message as it crossed a socket. msg is not kept
// (the store copies what it keeps), so a caller may reuse its buffer. A
// message is masked only when it is kept or a live trace takes it.
func (s *Store) Observe(p Packet, msg []byte) {
	s.stats.Observed.Add(1)
	var traced []*Subscription
	if subs := s.subs.Load(); subs != nil {
		for _, sub := range *subs {
			if sub.match(p.Remote, msg) && sub.allow() {
				traced = append(traced, sub)
			}
		}
	}
	key := CallID(msg)
	keep := false
	if key != "" {
		s.mu.Lock()
		_, keep = s.keys[key]
		s.mu.Unlock()
		keep = keep || startsDialog(msg)
	}
	if !keep && len(traced) == 0 {
		return
	}
	masked := Mask(msg)
	m := Message{Time: p.Time, Protocol: "sip", Interface: p.Interface, Direction: p.Dir.String(), Transport: p.Transport,
		Local: p.Local, Remote: p.Remote, Summary: Summary(masked), Method: CSeqMethod(masked), Text: string(masked)}
	for _, sub := range traced {
		sub.deliver(m)
	}
	if keep {
		s.Add(key, m)
	}
}

// Add stores m under a dialog key. A key not linked to a call starts a
// pending record (the oldest pending one is evicted beyond MaxPending).
func (s *Store) Add(key string, m Message) {
	if len(m.Text) > s.cfg.MaxCallBytes {
		s.stats.Dropped.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.keys[key]
	if r == nil {
		for s.pending >= s.cfg.MaxPending && s.evictOldest(true) {
		}
		r = s.newRecord()
		r.keys = []string{key}
		s.keys[key] = r
		s.pending++
	}
	s.append(r, m)
	for s.bytes > s.cfg.MaxBytes && s.order.Front() != nil && s.order.Front().Value.(*record) != r {
		s.evictOldest(false)
	}
}

// Len returns how many calls and pending dialogs the store holds, and
// the bytes of text they keep.
func (s *Store) Len() (calls, pending, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls), s.pending, s.bytes
}

// Ladder returns call id's messages placed between the four parties;
// ok is false when the store holds nothing for it.
func (s *Store) Ladder(id string) (l Ladder, ok bool) {
	s.mu.Lock()
	r := s.calls[id]
	if r == nil {
		s.mu.Unlock()
		return Ladder{}, false
	}
	msgs := append([]Message(nil), r.msgs...)
	l.Truncated = r.truncated
	s.mu.Unlock()
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].Time.Before(msgs[j].Time) })
	l.Call = id
	l.Parties = []Party{{Name: "outside party"}, {Name: "Portico outside"}, {Name: "Portico inside"}, {Name: "inside party"}}
	for i := range msgs {
		m := &msgs[i]
		m.Index = i
		own, far := PorticoOutside, OutsideParty
		if m.Interface == Internal {
			own, far = PorticoInside, InsideParty
		}
		if m.Direction == Out.String() {
			m.From, m.To = own, far
		} else {
			m.From, m.To = far, own
		}
		if l.Parties[far].Address == "" && m.Remote.IsValid() {
			l.Parties[far].Address = m.Remote.String()
		}
		if l.Parties[own].Address == "" && m.Local.IsValid() {
			l.Parties[own].Address = m.Local.String()
		}
	}
	l.Messages = msgs
	return l, true
}
