// Package media relays the media of every call that crosses Portico: RTP and
// RTCP (RFC 3550), SRTP/SRTCP passed through untouched (RFC 3711), STUN and
// DTLS on media ports (RFC 7983), any number of SSRCs per stream (SVC,
// simulcast), and TCP media such as BFCP (RFC 4145 setup/connection).
//
// Each stream of a session gets a relay: a socket pair (RTP and RTCP, or one
// socket with rtcp-mux, RFC 5761) on each of its two legs' interfaces. The
// outside peer is learnt from its first packet (latching, RFC 7362 section
// 4.1), but only from the signalled IP or, with NAT latching, the IP the
// leg's signalling came from (any port). A latched peer is replaced only on
// evidence that the same party moved: a packet continuing its SSRC and
// sequence numbers, or the signalled/signalling IP after a quiet interval;
// silence alone never lets a stranger in (endpoint.admit). Packets from
// anyone else are counted and dropped, never forwarded. Port pairs are
// handed out in random order so that relay ports cannot be guessed.
//
// On Linux the packet path is a few epoll workers that move datagrams with
// recvmmsg/sendmmsg (internal/batchio) between non-blocking sockets, with
// buffers allocated once per worker and peer state read through
// atomic.Pointer, so forwarding allocates nothing and takes no lock that call
// setup holds. While packets flow a worker waits for the next ones in
// epoll_wait on its own thread without giving up its P (one system call per
// wake-up, no network poller or scheduler hand-off); at most GOMAXPROCS-1
// workers wait so at once, so one P stays free for signalling and the
// control plane; every millisecond such a worker goes through Go's network
// poller instead, and after 2 ms without packets it parks there. Elsewhere each socket has a goroutine (portable fallback).
//
// With the eBPF fast path (fastpath*.go, bpf/fastpath.c) a stream whose
// legs are both latched has its RTP forwarded by a tcx program from map
// entries the packet worker installs after it relayed the first packets;
// everything the program does not take (strangers, RTCP, STUN, keep-alives,
// multiplexed and IPv6 media) arrives at the sockets as before.
//
// For ITU-T H.460.19 endpoints behind NAT a leg recognises keep-alives
// (StreamConfig.KeepAlive: latched on, counted, never forwarded), and an
// interface may have multiplexed ports where datagrams prefixed with a
// multiplexID are demultiplexed to their leg (mux.go).
//
// Statistics come from RTCP sender and receiver reports (RFC 3550 section
// 6.4): packets, bytes, loss, jitter and round-trip time per leg.
package media
