package guard

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// KernelSet mirrors blocks into the kernel so that blocked packets are
// dropped before they reach a socket (an nftables set, see NewNFTSet).
// Calls come from the guard's own goroutine, one at a time.
type KernelSet interface {
	// Add blocks p for ttl (the element expires by itself).
	Add(p netip.Prefix, ttl time.Duration) error
	// Remove lifts the block of p early.
	Remove(p netip.Prefix) error
	Close() error
}

// NFTTable is the nftables table (family inet) the guard owns (NFTSet).
const NFTTable = "portico_guard"

// Event tells that a source was blocked or unblocked.
type Event struct {
	Time   time.Time
	Action string // "blocked" or "unblocked"
	Source netip.Prefix
	Reason string
	Until  time.Time // blocked: when the block ends
}

// Deps are the guard's collaborators.
type Deps struct {
	// Logger receives logs; a component=guard attribute is added. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives Prometheus metrics. Nil: not exported.
	Registerer prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Kernel mirrors blocks into the kernel. Nil: OpenKernel decides.
	Kernel KernelSet
	// OpenKernel, when Kernel is nil, is called by Run to set up the kernel
	// set (NewNFTSet) unless Config.Kernel is "off". Its failure is logged
	// and blocking stays in-process ("auto"), or fails Run ("on").
	OpenKernel func() (KernelSet, error)
	// Events receives every block and unblock. Nil: logged only.
	Events func(Event)
	// Store keeps manual blocks (Block, Unblock) across restarts; LoadBlocks
	// restores them. Nil: manual blocks last until the process ends.
	Store BlockStore
}

// BlockInfo is one blocked source, for the API.
type BlockInfo struct {
	Source  string    `json:"source"`
	Reason  string    `json:"reason"`
	Manual  bool      `json:"manual"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	Dropped uint64    `json:"dropped"`
}

type block struct {
	prefix  netip.Prefix
	reason  string
	manual  bool
	since   time.Time
	until   int64 // unix nanoseconds
	dropped atomic.Uint64
}

// blockSet is immutable once published: Blocked reads it without locks.
type blockSet struct {
	v6bits int
	exact  map[netip.Prefix]*block // per-source keys (/32, /IPv6Prefix)
	wide   []*block                // manual blocks of other prefix lengths
}

// Guard scores sources and blocks the ones that misbehave. Its methods are
// safe for concurrent use.
type Guard struct {
	log        *slog.Logger
	now        func() time.Time
	events     func(Event)
	kernel     atomic.Pointer[KernelSet] // set before, or at the start of, Run
	openKernel func() (KernelSet, error)
	store      BlockStore
	m          *metrics

	set     atomic.Pointer[settings]
	blocks  atomic.Pointer[blockSet]
	blockMu sync.Mutex // serialises changes of blocks
	sources *table[netip.Prefix]
	users   *table[string]
	limits  *table[netip.Prefix] // rate limit buckets

	dropped   atomic.Uint64 // every drop, also of blocks since ended
	kq        chan kernelOp
	closeOnce sync.Once
	closed    chan struct{}
}

type kernelOp struct {
	add    bool
	prefix netip.Prefix
	ttl    time.Duration
}

// New validates cfg and builds a guard; it does no I/O.
func New(cfg Config, deps Deps) (*Guard, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	g := &Guard{log: deps.Logger.With("component", "guard"), now: deps.Now, events: deps.Events, openKernel: deps.OpenKernel, store: deps.Store,
		sources: newTable[netip.Prefix](), users: newTable[string](), limits: newTable[netip.Prefix](), kq: make(chan kernelOp, 1024), closed: make(chan struct{})}
	g.set.Store(s)
	if deps.Kernel != nil {
		g.kernel.Store(&deps.Kernel)
	}
	g.blocks.Store(&blockSet{v6bits: s.v6bits, exact: map[netip.Prefix]*block{}})
	g.m = newMetrics(deps.Registerer, g)
	return g, nil
}

// Reload applies cfg for the next observation; blocks in force stay.
// Every field applies live, so restart is always empty (the services'
// common Reload contract).
func (g *Guard) Reload(cfg Config) (restart []string, err error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	g.blockMu.Lock()
	g.set.Store(s)
	if old := g.blocks.Load(); old.v6bits != s.v6bits {
		// Blocks keep their prefixes; which are looked up exactly changes.
		n := &blockSet{v6bits: s.v6bits, exact: map[netip.Prefix]*block{}}
		for _, b := range old.exact {
			n = n.with(b)
		}
		for _, b := range old.wide {
			n = n.with(b)
		}
		g.blocks.Store(n)
	}
	g.blockMu.Unlock()
	return nil, nil
}

// Key returns the prefix a source is scored and blocked by: the address
// for IPv4, its /Config.IPv6Prefix for IPv6.
func (g *Guard) Key(src netip.Addr) netip.Prefix {
	return key(src, g.set.Load().v6bits)
}

func key(src netip.Addr, v6bits int) netip.Prefix {
	src = src.Unmap().WithZone("")
	if src.Is4() {
		return netip.PrefixFrom(src, 32)
	}
	p, _ := src.Prefix(v6bits)
	return p
}

// Blocked reports whether src is blocked, and counts the drop. It takes no
// lock and does not allocate.
func (g *Guard) Blocked(src netip.Addr) bool {
	bs := g.blocks.Load()
	if len(bs.exact) == 0 && len(bs.wide) == 0 {
		return false
	}
	// The clock is read only on a match: most lookups miss.
	if b := bs.exact[key(src, bs.v6bits)]; b != nil && g.now().UnixNano() < b.until {
		b.dropped.Add(1)
		g.dropped.Add(1)
		return true
	}
	src = src.Unmap()
	for _, b := range bs.wide {
		if b.prefix.Contains(src) && g.now().UnixNano() < b.until {
			b.dropped.Add(1)
			g.dropped.Add(1)
			return true
		}
	}
	return false
}

// Allowed reports whether src is on the allow list.
func (g *Guard) Allowed(src netip.Addr) bool { return g.set.Load().allowed(src.Unmap()) }

func (s *settings) allowed(src netip.Addr) bool {
	for _, p := range s.allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// ScannerAgent reports whether a SIP User-Agent names a known scanner.
func (g *Guard) ScannerAgent(ua string) bool {
	return MatchAgent(ua, g.set.Load().agents)
}

// MatchAgent reports whether the User-Agent ua contains one of agents
// (lower-case substrings, such as DefaultScannerAgents).
func MatchAgent(ua string, agents []string) bool {
	if ua == "" {
		return false
	}
	ua = strings.ToLower(ua)
	for _, a := range agents {
		if strings.Contains(ua, a) {
			return true
		}
	}
	return false
}

// Observe counts one event of kind from src and reports whether src is
// blocked as a result (now or already).
func (g *Guard) Observe(src netip.Addr, k Kind) bool {
	s := g.set.Load()
	if s.disabled || k >= numKinds {
		return false
	}
	src = src.Unmap()
	if !src.IsValid() || s.allowed(src) {
		return false
	}
	g.m.observed[k].Inc()
	if s.limits[k].cap == 0 {
		return false
	}
	now := g.now()
	p := key(src, s.v6bits)
	var full bool
	var offences uint16
	if g.sources.add(p, k, now.UnixNano(), &s.limits, s.maxSources, func(e *entry) {
		if s.limits[k].full(e.levels[k]) {
			full = true
			e.levels = [numKinds]float32{}
			if e.offences < 64 {
				e.offences++
			}
			offences = e.offences
		}
	}) {
		g.m.evicted.Inc()
	}
	if full {
		g.block(p, k.String(), blockTime(s, offences), false, now)
	}
	return full
}

// ObserveDigestFailure counts refused credentials from src for user: per
// source (DigestFailure) and per user. Once the user's bucket is full, src
// is blocked at this failure. It reports whether src is blocked.
func (g *Guard) ObserveDigestFailure(src netip.Addr, user string) bool {
	if g.Observe(src, DigestFailure) {
		return true
	}
	s := g.set.Load()
	src = src.Unmap()
	if s.disabled || user == "" || s.user.cap == 0 || !src.IsValid() || s.allowed(src) {
		return false
	}
	ub := [numKinds]bucket{s.user}
	var hot bool
	now := g.now()
	g.users.add(strings.ToLower(user), 0, now.UnixNano(), &ub, s.maxUsers, func(e *entry) {
		hot = s.user.full(e.levels[0])
		if hot {
			e.levels[0] = float32(s.user.cap) // stays full while the guessing goes on
		}
	})
	if hot {
		g.block(key(src, s.v6bits), "digest_failure user "+user, s.blockTime, false, now)
	}
	return hot
}

func blockTime(s *settings, offences uint16) time.Duration {
	d := s.blockTime
	for i := uint16(1); i < offences && d < s.maxBlock; i++ {
		d *= 2
	}
	return min(d, s.maxBlock)
}

// Block blocks p (an address or network) for d by hand. Allow-listed
// sources are refused with ErrAllowed. With a Deps.Store the block is
// stored too; if that fails the block is in force but the error says that
// a restart lifts it.
func (g *Guard) Block(p netip.Prefix, d time.Duration, reason string) error {
	s := g.set.Load()
	p = p.Masked()
	if s.allowed(p.Addr()) {
		return ErrAllowed
	}
	if d <= 0 {
		d = s.blockTime
	}
	if reason == "" {
		reason = "manual"
	}
	now := g.now()
	g.block(p, reason, d, true, now)
	return g.saveBlock(ManualBlock{Prefix: p, Reason: reason, Since: now, Until: now.Add(d)})
}

func (g *Guard) block(p netip.Prefix, reason string, d time.Duration, manual bool, now time.Time) {
	b := &block{prefix: p, reason: reason, manual: manual, since: now, until: now.Add(d).UnixNano()}
	g.blockMu.Lock()
	old := g.blocks.Load()
	if ob := old.find(p); ob != nil && ob.until >= b.until && !manual {
		g.blockMu.Unlock()
		return // already blocked for longer
	}
	next := old.with(b)
	g.blocks.Store(next)
	g.blockMu.Unlock()
	g.m.blocks.WithLabelValues(reasonLabel(reason, manual)).Inc()
	g.log.Warn("source blocked", "source", p.String(), "reason", reason, "for", d.String())
	g.kernelOp(kernelOp{add: true, prefix: p, ttl: d})
	if g.events != nil {
		g.events(Event{Time: now, Action: "blocked", Source: p, Reason: reason, Until: now.Add(d)})
	}
}

func reasonLabel(reason string, manual bool) string {
	if manual {
		return "manual"
	}
	r, _, _ := strings.Cut(reason, " ")
	return r
}

func (bs *blockSet) find(p netip.Prefix) *block {
	if b := bs.exact[p]; b != nil {
		return b
	}
	for _, b := range bs.wide {
		if b.prefix == p {
			return b
		}
	}
	return nil
}

func (bs *blockSet) exactKey(p netip.Prefix) bool {
	return (p.Addr().Is4() && p.Bits() == 32) || (p.Addr().Is6() && p.Bits() == bs.v6bits)
}

// with returns a copy of bs holding b (replacing a block of the same prefix).
func (bs *blockSet) with(b *block) *blockSet {
	n := bs.without(b.prefix)
	if n.exactKey(b.prefix) {
		n.exact[b.prefix] = b
	} else {
		n.wide = append(n.wide, b)
	}
	return n
}

func (bs *blockSet) without(p netip.Prefix) *blockSet {
	n := &blockSet{v6bits: bs.v6bits, exact: make(map[netip.Prefix]*block, len(bs.exact)+1)}
	for k, b := range bs.exact {
		if k != p {
			n.exact[k] = b
		}
	}
	for _, b := range bs.wide {
		if b.prefix != p {
			n.wide = append(n.wide, b)
		}
	}
	return n
}

// Unblock lifts the block of p (as listed by Blocks) before it ends. It
// is removed from Deps.Store too; if that fails the block is
// lifted but the error says that a restart restores it.
func (g *Guard) Unblock(p netip.Prefix) error {
	p = p.Masked()
	g.blockMu.Lock()
	old := g.blocks.Load()
	b := old.find(p)
	if b == nil {
		g.blockMu.Unlock()
		return ErrNotBlocked
	}
	g.blocks.Store(old.without(p))
	g.blockMu.Unlock()
	// A lifted block is forgiven: the source starts from empty buckets.
	sh := g.sources.shard(p)
	sh.mu.Lock()
	delete(sh.m, p)
	sh.mu.Unlock()
	g.unblocked(b, "removed", g.now())
	// Also when an automatic block replaced a stored manual one.
	return g.deleteBlock(p)
}

func (g *Guard) unblocked(b *block, reason string, now time.Time) {
	g.log.Info("source unblocked", "source", b.prefix.String(), "reason", reason)
	g.kernelOp(kernelOp{prefix: b.prefix})
	if g.events != nil {
		g.events(Event{Time: now, Action: "unblocked", Source: b.prefix, Reason: reason})
	}
}

// Blocks lists the blocks in force, newest first. A non-empty query keeps
// those whose source contains it (an address inside the blocked network
// matches too) or whose reason contains it.
func (g *Guard) Blocks(query string) []BlockInfo {
	bs := g.blocks.Load()
	now := g.now().UnixNano()
	q := strings.ToLower(strings.TrimSpace(query))
	qa, qerr := netip.ParseAddr(q)
	var out []BlockInfo
	add := func(b *block) {
		if now >= b.until {
			return
		}
		src := b.prefix.String()
		if b.prefix.IsSingleIP() {
			src = b.prefix.Addr().String()
		}
		if q != "" && !strings.Contains(src, q) && !strings.Contains(strings.ToLower(b.reason), q) &&
			(qerr != nil || !b.prefix.Contains(qa.Unmap())) {
			return
		}
		out = append(out, BlockInfo{Source: src, Reason: b.reason, Manual: b.manual, Since: b.since,
			Until: time.Unix(0, b.until), Dropped: b.dropped.Load()})
	}
	for _, b := range bs.exact {
		add(b)
	}
	for _, b := range bs.wide {
		add(b)
	}
	slices.SortFunc(out, func(a, b BlockInfo) int {
		if c := b.Since.Compare(a.Since); c != 0 {
			return c
		}
		return strings.Compare(a.Source, b.Source)
	})
	return out
}

// Sweep removes ended blocks (reporting each as unblocked) and forgets
// sources and users whose buckets have drained. Run calls it every second.
func (g *Guard) Sweep() {
	now := g.now()
	ns := now.UnixNano()
	g.blockMu.Lock()
	old := g.blocks.Load()
	var ended []*block
	for _, b := range old.exact {
		if ns >= b.until {
			ended = append(ended, b)
		}
	}
	for _, b := range old.wide {
		if ns >= b.until {
			ended = append(ended, b)
		}
	}
	if len(ended) > 0 {
		n := old
		for _, b := range ended {
			n = n.without(b.prefix)
		}
		g.blocks.Store(n)
	}
	g.blockMu.Unlock()
	for _, b := range ended {
		g.log.Info("source unblocked", "source", b.prefix.String(), "reason", "block ended")
		if g.events != nil {
			g.events(Event{Time: now, Action: "unblocked", Source: b.prefix, Reason: "block ended"})
		}
	}
	s := g.set.Load()
	g.sources.prune(ns, &s.limits, int64(s.maxBlock))
	ub := [numKinds]bucket{s.user}
	g.users.prune(ns, &ub, 0)
	g.limits.prune(ns, &s.rates, 0)
}

// Sources returns how many sources are being scored.
func (g *Guard) Sources() int { return g.sources.len() }

func (g *Guard) kernelOp(op kernelOp) {
	if g.kernel.Load() == nil {
		return
	}
	select {
	case g.kq <- op:
	default:
		g.m.kernelErrors.Inc() // the in-process block still holds
	}
}

// Run sets up the kernel set (Deps.OpenKernel), then sweeps every second
// and feeds the kernel set until ctx ends or Close is called; it returns
// nil then, having closed the guard (and removed the kernel set).
func (g *Guard) Run(ctx context.Context) error {
	if err := g.startKernel(); err != nil {
		return err
	}
	defer g.Close() // the kernel set goes with the service
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.closed:
			return nil
		case <-t.C:
			g.Sweep()
		case op := <-g.kq:
			var err error
			k := *g.kernel.Load()
			if op.add {
				err = k.Add(op.prefix, op.ttl)
			} else {
				err = k.Remove(op.prefix)
			}
			if err != nil {
				g.m.kernelErrors.Inc()
				g.log.Warn("kernel set", "source", op.prefix.String(), "err", err)
			}
		}
	}
}

// Close stops Run and closes the kernel set. It is safe to call twice.
func (g *Guard) Close() error {
	var err error
	g.closeOnce.Do(func() {
		close(g.closed)
		if k := g.kernel.Load(); k != nil {
			err = (*k).Close()
		}
	})
	return err
}

// startKernel opens the kernel set when none was given and mirrors the
// blocks already in force into it.
func (g *Guard) startKernel() error {
	mode := g.set.Load().kernel
	if g.kernel.Load() == nil && g.openKernel != nil && mode != "off" {
		k, err := g.openKernel()
		if err != nil {
			if mode == "on" {
				return fmt.Errorf("%w: %v", ErrNoKernelSet, err)
			}
			g.log.Info("kernel set unavailable: blocked sources are dropped in the read path only", "err", err)
			return nil
		}
		g.kernel.Store(&k)
		g.log.Info("blocked sources are dropped in the kernel (nftables table inet " + NFTTable + ")")
	}
	if g.kernel.Load() == nil {
		return nil
	}
	now := g.now()
	bs := g.blocks.Load()
	for _, b := range append(slices.Collect(maps.Values(bs.exact)), bs.wide...) {
		if ttl := time.Unix(0, b.until).Sub(now); ttl > 0 {
			g.kernelOp(kernelOp{add: true, prefix: b.prefix, ttl: ttl})
		}
	}
	return nil
}
