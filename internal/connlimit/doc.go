// Package connlimit guards the stream listeners that face untrusted
// clients (SIP over TCP, TLS and WebSocket; the access proxy) against being
// put out of service by connections:
//
//   - Accept never gives up on a live listener. Errors such as EMFILE,
//     ENFILE, ENOBUFS or ECONNABORTED are retried with a backoff of 5 ms
//     doubling to 1 s, as net/http's Server.Serve does, so a serving loop
//     that returns on the first error (sipgo's) never sees one; only a
//     closed listener ends Accept.
//   - Connections are counted per listener and per source (an IPv4 address,
//     an IPv6 /64), or across the listeners sharing a Group (the ports of a
//     range); one beyond either cap is closed at once (with a reset) and
//     counted by reason.
//   - A connection must be marked established (its first request arrived)
//     within a handshake timeout, and is closed when it has carried nothing
//     either way for an idle timeout, unless the caller says it is still in
//     use (a registration or a call rides on it).
//   - A Reserve keeps file descriptors free for the management listener:
//     a listener refuses new connections while fewer than its share of
//     descriptors are free, counted from /proc/self/fd against
//     RLIMIT_NOFILE. (The Go runtime already raises the soft limit to the
//     hard one at start, see syscall's init, so the limit is what the
//     service manager allows.)
//
// Listener's rules are in its comment; a Listener is safe for concurrent
// use and its Close is idempotent.
package connlimit
