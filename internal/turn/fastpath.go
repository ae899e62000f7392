package turn

import (
	"encoding/binary"
	"net"

	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/portico-edge/portico/internal/batchio"
	"golang.org/x/sys/unix"
)

// The UDP data path (ChannelData, Send and Data indications, RFC 8656
// §11-12) is relayed by Portico's sockets themselves, in batches and
// without locks: the sockets read copy-on-write snapshots (atomic
// pointers to maps that are never modified once published) which the
// control path (pion's allocation, permission and channel events) replaces
// under a mutex. A datagram the snapshots do not cover goes to the engine,
// which decides as RFC 8656 says; a snapshot may lag the engine by the
// instant between an event and its publication, never by more.

// relayBatch is the number of datagrams one recvmmsg or sendmmsg call
// moves on a relay socket or a listener (2 KiB per slot, so 16 KiB per
// direction and socket).
const relayBatch = 8

// listenBatch is the number of datagrams one recvmmsg call reads on a UDP
// listener, which carries every client's traffic.
const listenBatch = 32

// STUN message types and attributes of the data path (RFC 8656 §18).
const (
	typeSendIndication = 0x0016
	typeDataIndication = 0x0017
	attrXORPeerAddress = 0x0012
	attrData           = 0x0013
	attrDontFragment   = 0x001A
	attrFingerprint    = 0x8028
)

// batchReader hands out a socket's datagrams one at a time, reading them
// in batches of size; its batch is allocated on first use. One goroutine
// reads.
type batchReader struct {
	in        *batchio.Conn
	size      int
	rb        *batchio.Batch
	next, got int // slots [next, got) are read and not handed out yet
}

// buffered reports whether datagrams read are waiting to be handed out.
func (r *batchReader) buffered() bool { return r.next < r.got }

// read returns the next datagram, blocking for a batch when none waits.
func (r *batchReader) read() (*batchio.Message, error) {
	if r.next >= r.got {
		if r.rb == nil {
			// Wait for the first datagram before allocating the batch and
			// calling recvmmsg: most relay sockets of a burst of
			// allocations never receive, or not at once.
			if err := waitReadable(r.in.UDPConn()); err != nil {
				return nil, err
			}
			r.rb = batchio.NewBatch(r.size)
		}
		n, err := r.in.ReadBatch(r.rb, 0)
		if err != nil {
			return nil, err
		}
		r.next, r.got = 0, n
	}
	m := &r.rb.Msgs[r.next]
	r.next++
	return m, nil
}

// waitReadable blocks in the network poller until c has a datagram to
// read (or is closed), without reading it.
func waitReadable(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(fd uintptr) bool {
		// A datagram may have arrived before this first read: the poller
		// reported it then and does not again, so look without taking it.
		return socketReadable(int(fd))
	})
}

// cow is a copy-on-write map: Load never locks; Store and Delete copy the
// map under mu and publish the copy.
type cow[K comparable, V any] struct {
	mu sync.Mutex
	p  atomic.Pointer[map[K]V]
}

func (c *cow[K, V]) load() map[K]V {
	if m := c.p.Load(); m != nil {
		return *m
	}
	return nil
}

// update publishes a copy of the map changed by f.
func (c *cow[K, V]) update(f func(m map[K]V)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.load()
	m := make(map[K]V, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	f(m)
	c.p.Store(&m)
}

func (c *cow[K, V]) store(k K, v V) { c.update(func(m map[K]V) { m[k] = v }) }

// deleteIf removes k when keep reports false for its value.
func (c *cow[K, V]) deleteIf(k K, drop func(V) bool) {
	if v, ok := c.load()[k]; !ok || !drop(v) {
		return
	}
	c.update(func(m map[K]V) {
		if v, ok := m[k]; ok && drop(v) {
			delete(m, k)
		}
	})
}

// cowShards is a copy-on-write map split by client port, so that a change
// copies one shard of a busy listener's table, not all of it.
const cowShards = 64

type shardedCOW[K comparable, V any] struct {
	shards [cowShards]cow[K, V]
}

func (s *shardedCOW[K, V]) shard(port uint16) *cow[K, V] { return &s.shards[port%cowShards] }

// appendChannelData appends a ChannelData message (RFC 8656 §12.4) to dst.
func appendChannelData(dst []byte, number uint16, data []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, number)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(data)))
	return append(dst, data...)
}

// appendDataIndication appends a Data indication (RFC 8656 §11.4) carrying
// data from peer to dst, with transaction ID tid.
func appendDataIndication(dst []byte, tid *[12]byte, peer netip.AddrPort, data []byte) []byte {
	addrLen := 8
	if !peer.Addr().Is4() {
		addrLen = 20
	}
	pad := (4 - len(data)%4) % 4
	dst = binary.BigEndian.AppendUint16(dst, typeDataIndication)
	dst = binary.BigEndian.AppendUint16(dst, uint16(4+addrLen+4+len(data)+pad))
	dst = binary.BigEndian.AppendUint32(dst, stunMagicCookie)
	dst = append(dst, tid[:]...)
	dst = binary.BigEndian.AppendUint16(dst, attrXORPeerAddress)
	dst = binary.BigEndian.AppendUint16(dst, uint16(addrLen))
	var key [16]byte
	binary.BigEndian.PutUint32(key[:4], stunMagicCookie)
	copy(key[4:], tid[:])
	if addrLen == 8 {
		dst = append(dst, 0, 0x01)
		dst = binary.BigEndian.AppendUint16(dst, peer.Port()^uint16(stunMagicCookie>>16))
		a := peer.Addr().As4()
		for i := range a {
			dst = append(dst, a[i]^key[i])
		}
	} else {
		dst = append(dst, 0, 0x02)
		dst = binary.BigEndian.AppendUint16(dst, peer.Port()^uint16(stunMagicCookie>>16))
		a := peer.Addr().As16()
		for i := range a {
			dst = append(dst, a[i]^key[i])
		}
	}
	dst = binary.BigEndian.AppendUint16(dst, attrData)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(data)))
	dst = append(dst, data...)
	return append(dst, make([]byte, pad)...)
}

// parseSendIndication returns the peer and data of a Send indication (RFC
// 8656 §11.4), or false when b is anything else or carries an attribute
// other than XOR-PEER-ADDRESS, DATA, DONT-FRAGMENT and FINGERPRINT (the
// engine answers those). It never trusts a length.
func parseSendIndication(b []byte) (netip.AddrPort, []byte, bool) {
	var (
		peer     netip.AddrPort
		data     []byte
		havePeer bool
		haveData bool
	)
	if len(b) < stunHeaderLen || binary.BigEndian.Uint16(b[0:2]) != typeSendIndication ||
		binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return peer, nil, false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n != len(b)-stunHeaderLen || n%4 != 0 {
		return peer, nil, false
	}
	var tid [12]byte
	copy(tid[:], b[8:20])
	body := b[stunHeaderLen:]
	for i := 0; len(body) > 0; i++ {
		if i == maxAttrsInspected || len(body) < 4 {
			return peer, nil, false
		}
		at := binary.BigEndian.Uint16(body[0:2])
		l := int(binary.BigEndian.Uint16(body[2:4]))
		padded := (l + 3) &^ 3
		if 4+padded > len(body) {
			return peer, nil, false
		}
		v := body[4 : 4+l]
		switch at {
		case attrXORPeerAddress:
			if havePeer {
				return peer, nil, false
			}
			if len(v) < 2 || v[0] != 0 { // the family is 16 bits
				return peer, nil, false
			}
			peer, havePeer = xorPeerAddress(v, tid)
			if !havePeer {
				return peer, nil, false
			}
		case attrData:
			if haveData {
				return peer, nil, false
			}
			data, haveData = v, true
		case attrDontFragment, attrFingerprint:
		default:
			return peer, nil, false
		}
		body = body[4+padded:]
	}
	if !havePeer || !haveData {
		return peer, nil, false
	}
	return unmapAP(peer), data, true
}

// socketReadable reports whether the socket fd has a datagram (or an
// error) waiting, without taking it.
func socketReadable(fd int) bool {
	var b [1]byte
	_, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err != unix.EAGAIN && err != unix.EWOULDBLOCK
}
