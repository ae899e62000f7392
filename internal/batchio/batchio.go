// Package batchio moves UDP datagrams in batches: recvmmsg(2) and sendmmsg(2)
// on Linux, one datagram per system call elsewhere.
//
// The media relay (RFC 3550 RTP forwarding) spends most of its time in system
// calls; batching amortises them. golang.org/x/net/ipv4.PacketConn.ReadBatch
// offers the same calls, but it allocates a *net.UDPAddr for every datagram
// received, so this package calls recvmmsg/sendmmsg itself through
// golang.org/x/sys/unix and keeps every header, iovec and address buffer
// allocated once per Batch: reading and writing a batch allocates nothing.
package batchio

import (
	"errors"
	"net/netip"
)

// MaxDatagram is the buffer size of each message slot: an Ethernet MTU's
// worth of UDP payload with room to spare (jumbo RTP is not relayed).
const MaxDatagram = 2048

// ErrWouldBlock is returned by the non-blocking fd calls when no datagram is
// waiting (EAGAIN).
var ErrWouldBlock = errors.New("batchio: would block")

// Message is one datagram slot of a Batch.
type Message struct {
	// Buf is the slot's buffer, len MaxDatagram, allocated once.
	Buf []byte
	// N is the datagram length after a read, and the length to send before a write.
	N int
	// Addr is the source after a read, and the destination before a write.
	Addr netip.AddrPort
}

// Data returns the datagram held by the slot.
func (m *Message) Data() []byte { return m.Buf[:m.N] }
