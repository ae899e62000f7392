package sipedge

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// Overload bounds the new work the edge takes on: out-of-dialog INVITEs
// and REGISTERs. Past capacity the edge refuses such a request early, so
// that what it accepted still completes before the client's timers fire
// (RFC 3261 section 17.1: 64*T1), instead of answering everything late.
//
//   - A request that waited longer than MaxWait between its arrival (when
//     it was parsed) and its handling is answered 503 with Retry-After
//     without being relayed (reason overload_waited).
//   - While MaxInFlight requests are being handled (relayed and waiting for
//     the inside's answer; an INVITE until its final response), one more is
//     answered 503 with Retry-After (reason overload_in_flight).
//   - While MaxQueued requests wait between arrival and handling, a new
//     INVITE or REGISTER datagram is dropped before it is parsed (dropped
//     reason overload): the client retransmits, by then perhaps admitted.
//
// In-dialog requests (BYE, ACK, re-INVITE, ...) and responses are never
// refused: they finish work already accepted.
type Overload struct {
	MaxInFlight int           // default 1,000
	MaxQueued   int           // default 2,000
	MaxWait     time.Duration // default 2s
	RetryAfter  time.Duration // in the 503 answers; default 5s
}

// Defaults of Overload.
const (
	DefaultOverloadMaxInFlight = 1000
	DefaultOverloadMaxQueued   = 2000
	DefaultOverloadMaxWait     = 2 * time.Second
	DefaultOverloadRetryAfter  = 5 * time.Second
)

func (o Overload) withDefaults(add func(path, format string, a ...any)) Overload {
	for _, f := range []struct {
		name string
		neg  bool
	}{{"max_in_flight", o.MaxInFlight < 0}, {"max_queued", o.MaxQueued < 0}, {"max_wait", o.MaxWait < 0}, {"retry_after", o.RetryAfter < 0}} {
		if f.neg {
			add("overload."+f.name, "must not be negative (0: the default)")
		}
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultOverloadMaxInFlight
	}
	if o.MaxQueued == 0 {
		o.MaxQueued = DefaultOverloadMaxQueued
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultOverloadMaxWait
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = DefaultOverloadRetryAfter
	}
	return o
}

// admission tracks the new requests between arrival and handling (their
// arrival times) and those being handled.
//
// A request's arrival is stamped by the transport layer's message hook,
// on the socket's read goroutine right after parsing, under its
// transaction key (method and Via branch), so that a retransmission finds
// its first transmission's stamp; its handler runs on a goroutine of its
// own and marks the stamp taken. Stamps are kept in two generations: the
// older is discarded when the newer is MaxWait old (a request still
// waiting then is counted out of the queue; its handler treats it as
// fresh).
type admission struct {
	inFlight atomic.Int64
	queued   atomic.Int64 // stamps not taken, both generations

	mu      sync.Mutex
	cur     map[txID]time.Time // zero time: taken
	prev    map[txID]time.Time
	rotated time.Time
}

// newWork reports whether req is work the edge may refuse under load: a
// REGISTER or an INVITE outside a dialog.
func newWork(req *sip.Request) bool {
	switch req.Method {
	case sip.REGISTER:
		return true
	case sip.INVITE:
		to := req.To()
		return to == nil || !to.Params.Has("tag")
	}
	return false
}

// txID is a request's server transaction key (RFC 3261 section
// 17.2.3): a struct, not a joined string, so that stamping a request
// allocates nothing.
type txID struct {
	method sip.RequestMethod
	branch string
}

// txKey is req's transaction key; ok is false without a branch.
func txKey(req *sip.Request) (id txID, ok bool) {
	via := req.Via()
	if via == nil || via.Params == nil {
		return txID{}, false
	}
	b, ok := via.Params.Get("branch")
	if !ok || b == "" {
		return txID{}, false
	}
	return txID{req.Method, b}, true
}

// rotateLocked starts a new generation when the current one is maxWait
// old; the caller holds mu.
func (a *admission) rotateLocked(now time.Time, maxWait time.Duration) {
	if a.cur != nil && now.Sub(a.rotated) < maxWait {
		return
	}
	waiting := 0
	for _, t := range a.prev {
		if !t.IsZero() {
			waiting++
		}
	}
	a.queued.Add(-int64(waiting))
	a.prev, a.cur, a.rotated = a.cur, make(map[txID]time.Time, len(a.cur)), now
}

// arrived stamps a new request's arrival (the transport's message hook).
func (a *admission) arrived(msg sip.Message, maxWait time.Duration) {
	req, ok := msg.(*sip.Request)
	if !ok || !newWork(req) {
		return
	}
	key, ok := txKey(req)
	if !ok {
		return
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rotateLocked(now, maxWait)
	if _, ok := a.cur[key]; ok {
		return // a retransmission
	}
	if _, ok := a.prev[key]; ok {
		return
	}
	a.cur[key] = now
	a.queued.Add(1)
}

// take marks req's stamp taken and returns its arrival, or now when
// unknown.
func (a *admission) take(req *sip.Request, now time.Time) time.Time {
	key, ok := txKey(req)
	if !ok {
		return now
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range [2]map[txID]time.Time{a.cur, a.prev} {
		if t, ok := m[key]; ok {
			if t.IsZero() {
				return now
			}
			m[key] = time.Time{}
			a.queued.Add(-1)
			return t
		}
	}
	return now
}

// refuse decides, at the start of a new request's handling, whether it is
// refused; "" admits it, and the caller then calls done when finished.
func (a *admission) refuse(o Overload, arrival, now time.Time) string {
	if now.Sub(arrival) > o.MaxWait {
		return rejectWaited
	}
	if a.inFlight.Add(1) > int64(o.MaxInFlight) {
		a.inFlight.Add(-1)
		return rejectInFlight
	}
	return ""
}

func (a *admission) done() { a.inFlight.Add(-1) }

// register exports the admission's two counts as gauges
// (portico_sip_overload_in_flight, portico_sip_overload_queued).
func (a *admission) register(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, g := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portico_sip_overload_in_flight",
			Help: "New INVITEs and REGISTERs being handled (bounded by overload.max_in_flight)."},
			func() float64 { return float64(a.inFlight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portico_sip_overload_queued",
			Help: "New INVITEs and REGISTERs parsed and waiting to be handled (bounded by overload.max_queued)."},
			func() float64 { return float64(a.queued.Load()) }),
	} {
		_ = reg.Register(g) // a second edge on one registry keeps the first's
	}
}

// Reasons of the rejected and dropped counters.
const (
	rejectWaited   = "overload_waited"
	rejectInFlight = "overload_in_flight"
	dropOverload   = "overload"
)

// shedDatagram reports whether a datagram is a new INVITE or REGISTER to
// drop unparsed because too many requests already wait to be handled.
func (a *admission) shedDatagram(o Overload, data []byte) bool {
	if a.queued.Load() < int64(o.MaxQueued) {
		return false
	}
	// Shed datagrams stamp nothing: the generations must still turn for
	// the queue to drain.
	a.mu.Lock()
	a.rotateLocked(time.Now(), o.MaxWait)
	a.mu.Unlock()
	if a.queued.Load() < int64(o.MaxQueued) {
		return false
	}
	switch {
	case bytes.HasPrefix(data, []byte("REGISTER ")):
		return true
	case bytes.HasPrefix(data, []byte("INVITE ")):
		return !toHasTag(data)
	}
	return false
}

// toHasTag reports whether a raw message's To header (long or compact
// form) carries a tag parameter: a re-INVITE, never shed.
func toHasTag(data []byte) bool {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	for len(head) > 0 {
		var line []byte
		line, head, _ = bytes.Cut(head, []byte("\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, []byte("To")) || bytes.EqualFold(name, []byte("t")) {
			return bytes.Contains(bytes.ToLower(value), []byte(";tag="))
		}
	}
	return false
}

// overloadRetryAfter is the Retry-After of an overload refusal.
func overloadRetryAfter(o Overload) sip.Header {
	return sip.NewHeader("Retry-After", strconv.Itoa(int((o.RetryAfter+time.Second-1)/time.Second)))
}

// relayBudget bounds the wait for the inside's answer to a relayed
// REGISTER: the client's Timer F (64*T1, DefaultTransactionTimeout) less
// the longest wait before handling and a margin for the answer's way back,
// so that the edge's 503 still reaches a client that is waiting.
func relayBudget(o Overload) time.Duration {
	return max(DefaultTransactionTimeout-o.MaxWait-2*time.Second, DefaultTransactionTimeout/2)
}
