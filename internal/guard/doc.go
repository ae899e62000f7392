// Package guard scores outside sources by what they do and blocks the ones
// that behave like scanners, guessers or floods, for every service of the
// node (SIP, TURN, the management API).
//
// Services report what a source did with Observe (a SIP request from a
// scanner's user agent, a REGISTER, a 401 or 404 answered to it, a digest
// failure, a TURN authentication failure, a failed management login, a
// packet that does not parse) and ask Blocked before they read any further
// from that source. Each source (an IPv4 address, or the /64 of an IPv6
// address) has one leaky bucket per Kind: a bucket of capacity Limit.Count
// drains at Limit.Count per Limit.Window, so Count events inside one window
// fill it, in the manner of fail2ban's maxretry/findtime. A full bucket
// blocks the source for Config.BlockTime, doubled for each earlier block up
// to Config.MaxBlockTime.
//
// Digest failures are also counted per user: once a user's bucket is full,
// every source that fails against that user is blocked at its first
// failure, which stops guessing spread over many addresses.
//
// Blocked costs one atomic load and one map lookup in an immutable set
// replaced on every change (blocks are rare, lookups are per packet). The
// score tables are sharded and bounded (Config.MaxSources): when a shard is
// full, the lowest-scoring of a sample of entries is evicted, so an outsider
// spraying spoofed sources cannot grow memory without bound and cannot push
// out a source about to be blocked. Addresses in Config.Allow are never
// scored or blocked.
//
// A KernelSet, when given, mirrors the block set into the kernel (an
// nftables set with per-element timeouts) so that blocked traffic is
// dropped before it reaches a socket.
package guard
