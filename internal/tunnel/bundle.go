package tunnel

import (
	"encoding/binary"
	"fmt"
)

// A bundle is one QUIC datagram carrying one or more flow datagrams, so that
// a busy tunnel sends fewer, fuller QUIC packets:
//
//	byte 0      version (high 4 bits, 2) | 0 (low 4 bits)
//	then, once per entry:
//	bytes 0-1   entry length n, big endian (headerFixed+1 .. maxBundleEntry)
//	bytes 2..   n bytes: a flow Header (kind UDP) and the flow's payload
//
// The entries fill the datagram exactly. The version differs from the flow
// header's, so neither parser accepts the other's bytes.
const (
	bundleVersion = 2
	// maxBundleEntries caps the entries of one bundle, on both ends.
	maxBundleEntries = 64
	// maxBundleEntry is the largest entry: a header and a full payload.
	maxBundleEntry = maxDatagram + MaxHeader
	bundleEntryLen = 2
)

// newBundle starts a bundle in dst.
func newBundle(dst []byte) []byte { return append(dst, bundleVersion<<4) }

// appendBundleEntry appends one entry (an encoded Header and its payload)
// to a bundle started with newBundle. The entry must be at most
// maxBundleEntry bytes.
func appendBundleEntry(dst, entry []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(entry)))
	return append(dst, entry...)
}

// bundleEntryCost is what an entry of n bytes adds to a bundle.
func bundleEntryCost(n int) int { return bundleEntryLen + n }

// ParseBundle splits a bundle into its entries, appending them to dst (they
// alias b); each entry is an encoded Header followed by its payload, checked
// by Parse. The framing is checked in full before any entry is returned: a
// bundle with a wrong version, a truncated or oversized entry, trailing
// bytes, no entry or more than 64 is refused with ErrHeader.
func ParseBundle(b []byte, dst [][]byte) ([][]byte, error) {
	if len(b) < 1 {
		return dst, fmt.Errorf("%w: empty bundle", ErrHeader)
	}
	if b[0] != bundleVersion<<4 {
		return dst, fmt.Errorf("%w: bundle version byte %#x", ErrHeader, b[0])
	}
	start := len(dst)
	for i := 1; i < len(b); {
		if len(dst)-start == maxBundleEntries {
			return dst[:start], fmt.Errorf("%w: more than %d bundle entries", ErrHeader, maxBundleEntries)
		}
		if len(b)-i < bundleEntryLen {
			return dst[:start], fmt.Errorf("%w: bundle entry length truncated", ErrHeader)
		}
		n := int(binary.BigEndian.Uint16(b[i:]))
		i += bundleEntryLen
		if n <= headerFixed || n > maxBundleEntry {
			return dst[:start], fmt.Errorf("%w: bundle entry length %d", ErrHeader, n)
		}
		if len(b)-i < n {
			return dst[:start], fmt.Errorf("%w: bundle entry truncated", ErrHeader)
		}
		dst = append(dst, b[i:i+n:i+n])
		i += n
	}
	if len(dst) == start {
		return dst, fmt.Errorf("%w: bundle without entries", ErrHeader)
	}
	return dst, nil
}
