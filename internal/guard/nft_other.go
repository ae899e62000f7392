//go:build !linux

package guard

import (
	"net/netip"
	"time"
)

// NFTSet is unavailable off Linux; NewNFTSet returns ErrNoKernelSet.
type NFTSet struct{}

// NewNFTSet returns ErrNoKernelSet: nftables is Linux only.
func NewNFTSet(netns int) (*NFTSet, error) { return nil, ErrNoKernelSet }

func (*NFTSet) Add(netip.Prefix, time.Duration) error { return ErrNoKernelSet }
func (*NFTSet) Remove(netip.Prefix) error             { return ErrNoKernelSet }
func (*NFTSet) Contains(netip.Prefix) (bool, error)   { return false, ErrNoKernelSet }
func (*NFTSet) Close() error                          { return nil }
