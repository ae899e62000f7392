//go:build linux

package guard

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NFTSet is a KernelSet in nftables: table inet portico_guard holds the
// interval sets blocked4 and blocked6, whose elements carry their own
// timeout, and a chain at prerouting, priority raw (before connection
// tracking), that drops packets from their members. It needs
// CAP_NET_ADMIN.
type NFTSet struct {
	mu     sync.Mutex
	conn   *nftables.Conn
	table  *nftables.Table
	v4, v6 *nftables.Set
	closed bool
}

var _ KernelSet = (*NFTSet)(nil)

// NewNFTSet sets up the table, replacing one left by an earlier run. netns
// is a network namespace file descriptor, or -1 for the current one.
func NewNFTSet(netns int) (*NFTSet, error) {
	var opts []nftables.ConnOption
	if netns >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("guard: nftables: %w", err)
	}
	t := &nftables.Table{Name: NFTTable, Family: nftables.TableFamilyINet}
	// A table left by a crashed run goes first; its absence is no error.
	c.DelTable(t)
	_ = c.Flush()
	n := &NFTSet{conn: c, table: c.AddTable(t)}
	n.v4 = &nftables.Set{Table: t, Name: "blocked4", KeyType: nftables.TypeIPAddr, Interval: true, HasTimeout: true}
	n.v6 = &nftables.Set{Table: t, Name: "blocked6", KeyType: nftables.TypeIP6Addr, Interval: true, HasTimeout: true}
	for _, s := range []*nftables.Set{n.v4, n.v6} {
		if err := c.AddSet(s, nil); err != nil {
			return nil, fmt.Errorf("guard: nftables set %s: %w", s.Name, err)
		}
	}
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &policy})
	for _, r := range []struct {
		proto       byte
		off, length uint32
		set         *nftables.Set
	}{{unix.NFPROTO_IPV4, 12, 4, n.v4}, {unix.NFPROTO_IPV6, 8, 16, n.v6}} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: r.off, Len: r.length},
			&expr.Lookup{SourceRegister: 1, SetName: r.set.Name, SetID: r.set.ID},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("guard: nftables table %s: %w", NFTTable, err)
	}
	return n, nil
}

// elements are an interval set's start and end elements for p.
func (n *NFTSet) elements(p netip.Prefix, ttl time.Duration) (*nftables.Set, []nftables.SetElement) {
	p = p.Masked()
	set := n.v4
	if p.Addr().Is6() {
		set = n.v6
	}
	start := p.Addr().AsSlice()
	end := lastAddr(p).AsSlice()
	els := []nftables.SetElement{{Key: start, Timeout: ttl}}
	if next, ok := increment(end); ok {
		els = append(els, nftables.SetElement{Key: next, IntervalEnd: true})
	}
	return set, els
}

// Add blocks p for ttl (at least one second).
func (n *NFTSet) Add(p netip.Prefix, ttl time.Duration) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrNoKernelSet
	}
	ttl = max(ttl.Round(time.Second), time.Second)
	set, els := n.elements(p, ttl)
	// An element already there (a block renewed) is replaced.
	_ = n.conn.SetDeleteElements(set, els)
	_ = n.conn.Flush()
	if err := n.conn.SetAddElements(set, els); err != nil {
		return err
	}
	return n.conn.Flush()
}

// Remove lifts the block of p; one already expired is no error.
func (n *NFTSet) Remove(p netip.Prefix) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrNoKernelSet
	}
	set, els := n.elements(p, 0)
	if err := n.conn.SetDeleteElements(set, els); err != nil {
		return err
	}
	if err := n.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// Contains reports whether p is in the kernel set (tests, diagnostics).
func (n *NFTSet) Contains(p netip.Prefix) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	set, _ := n.elements(p, 0)
	els, err := n.conn.GetSetElements(set)
	if err != nil {
		return false, err
	}
	want := p.Masked().Addr().AsSlice()
	for _, e := range els {
		if !e.IntervalEnd && string(e.Key) == string(want) {
			return true, nil
		}
	}
	return false, nil
}

// Close removes the table. It is safe to call twice.
func (n *NFTSet) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.conn.DelTable(n.table)
	err := n.conn.Flush()
	n.conn.CloseLasting()
	return err
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// increment adds one to a big-endian address; ok is false on overflow.
func increment(b []byte) ([]byte, bool) {
	out := append([]byte(nil), b...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]++
		if out[i] != 0 {
			return out, true
		}
	}
	return nil, false
}
