// Package hasync replicates the live state of a Portico node to its HA peer:
// relay sessions, registrations and their NAT flows, SIP dialogs, TURN
// allocations and answered H.323 calls. A node
// dials its peer over one mutually authenticated TLS 1.3 connection and
// sends a full snapshot of every registered kind of state, then each change
// as it happens; the peer applies what it receives to its own services,
// which hold the state warm (relay sockets bound with IP_FREEBIND on the
// VIP) so that the state keeps working the moment the VIP moves.
//
// Services announce a change with Node.Changed (kind and key only, never
// blocking: a full queue drops the change and schedules a resync, a full
// snapshot, so a slow peer never holds up the packet path or call setup).
// The sender reads the current state of a changed key when it sends it, so
// a queued change never carries stale data and repeated changes of one key
// cost one record. The receiver acknowledges what it applied; the time from
// a change to its acknowledgement is the replication lag.
//
// The wire format (wire.go) is length-prefixed frames with a version byte;
// PostgreSQL stays the durable copy of history only.
package hasync
