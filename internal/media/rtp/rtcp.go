package rtp

import "encoding/binary"

// RTCP packet types (RFC 3550 section 12.1).
const (
	TypeSR   = 200
	TypeRR   = 201
	TypeSDES = 202
	TypeBYE  = 203
	TypeAPP  = 204
)

// ReportBlock is one reception report (RFC 3550 section 6.4.1).
type ReportBlock struct {
	SSRC         uint32 // source this block reports on
	FractionLost uint8  // fraction lost since the last report, /256
	TotalLost    int32  // cumulative packets lost (24-bit signed)
	HighestSeq   uint32 // extended highest sequence number received
	Jitter       uint32 // interarrival jitter, timestamp units
	LSR          uint32 // middle 32 bits of the last SR's NTP timestamp
	DLSR         uint32 // delay since last SR, 1/65536 s
}

// SenderInfo is the sender part of an SR.
type SenderInfo struct {
	NTP         uint64
	RTPTime     uint32
	PacketCount uint32
	OctetCount  uint32
}

// MaxBlocks caps the report blocks a Report holds (a header allows 31).
const MaxBlocks = 31

// Report is what a relay learns from one compound RTCP packet: the sender
// SSRC, sender info when an SR was present, and its report blocks.
type Report struct {
	SSRC    uint32
	HasSR   bool
	Sender  SenderInfo
	NBlocks int
	Blocks  [MaxBlocks]ReportBlock
	BYE     bool
	Packets int // RTCP packets in the compound
}

// ParseCompound walks a compound RTCP packet and fills r with the SR/RR it
// finds; other packet types are skipped. It stops at the first malformed
// packet and returns an error, keeping what was read before it.
func ParseCompound(b []byte, r *Report) error {
	r.HasSR, r.NBlocks, r.BYE, r.Packets = false, 0, false, 0
	for len(b) > 0 {
		if len(b) < 4 {
			return ErrShort
		}
		if b[0]>>6 != 2 {
			return ErrVersion
		}
		n := 4 * (int(binary.BigEndian.Uint16(b[2:])) + 1)
		if n > len(b) {
			return ErrLength
		}
		p := b[:n]
		b = b[n:]
		r.Packets++
		count := int(p[0] & 0x1f)
		var blocks []byte
		switch p[1] {
		case TypeSR:
			if len(p) < 28 {
				return ErrShort
			}
			r.SSRC = binary.BigEndian.Uint32(p[4:])
			r.HasSR = true
			r.Sender = SenderInfo{
				NTP:         binary.BigEndian.Uint64(p[8:]),
				RTPTime:     binary.BigEndian.Uint32(p[16:]),
				PacketCount: binary.BigEndian.Uint32(p[20:]),
				OctetCount:  binary.BigEndian.Uint32(p[24:]),
			}
			blocks = p[28:]
		case TypeRR:
			if len(p) < 8 {
				return ErrShort
			}
			r.SSRC = binary.BigEndian.Uint32(p[4:])
			blocks = p[8:]
		case TypeBYE:
			r.BYE = true
			continue
		default:
			continue
		}
		if count*24 > len(blocks) {
			return ErrLength
		}
		for i := 0; i < count && r.NBlocks < MaxBlocks; i++ {
			q := blocks[i*24:]
			lost := int32(binary.BigEndian.Uint32(q[4:]) & 0xffffff)
			if lost&0x800000 != 0 {
				lost -= 1 << 24
			}
			r.Blocks[r.NBlocks] = ReportBlock{
				SSRC:         binary.BigEndian.Uint32(q),
				FractionLost: q[4],
				TotalLost:    lost,
				HighestSeq:   binary.BigEndian.Uint32(q[8:]),
				Jitter:       binary.BigEndian.Uint32(q[12:]),
				LSR:          binary.BigEndian.Uint32(q[16:]),
				DLSR:         binary.BigEndian.Uint32(q[20:]),
			}
			r.NBlocks++
		}
	}
	return nil
}

// AppendSR appends an SR with the given report blocks (for tests and tools).
func AppendSR(dst []byte, ssrc uint32, si SenderInfo, blocks []ReportBlock) []byte {
	if len(blocks) > MaxBlocks {
		blocks = blocks[:MaxBlocks]
	}
	words := 6 + 6*len(blocks)
	dst = append(dst, 0x80|byte(len(blocks)), TypeSR, byte(words>>8), byte(words))
	dst = binary.BigEndian.AppendUint32(dst, ssrc)
	dst = binary.BigEndian.AppendUint64(dst, si.NTP)
	dst = binary.BigEndian.AppendUint32(dst, si.RTPTime)
	dst = binary.BigEndian.AppendUint32(dst, si.PacketCount)
	dst = binary.BigEndian.AppendUint32(dst, si.OctetCount)
	return appendBlocks(dst, blocks)
}

// AppendRR appends an RR with the given report blocks.
func AppendRR(dst []byte, ssrc uint32, blocks []ReportBlock) []byte {
	if len(blocks) > MaxBlocks {
		blocks = blocks[:MaxBlocks]
	}
	words := 1 + 6*len(blocks)
	dst = append(dst, 0x80|byte(len(blocks)), TypeRR, byte(words>>8), byte(words))
	dst = binary.BigEndian.AppendUint32(dst, ssrc)
	return appendBlocks(dst, blocks)
}

func appendBlocks(dst []byte, blocks []ReportBlock) []byte {
	for _, rb := range blocks {
		dst = binary.BigEndian.AppendUint32(dst, rb.SSRC)
		dst = binary.BigEndian.AppendUint32(dst, uint32(rb.FractionLost)<<24|uint32(rb.TotalLost)&0xffffff)
		dst = binary.BigEndian.AppendUint32(dst, rb.HighestSeq)
		dst = binary.BigEndian.AppendUint32(dst, rb.Jitter)
		dst = binary.BigEndian.AppendUint32(dst, rb.LSR)
		dst = binary.BigEndian.AppendUint32(dst, rb.DLSR)
	}
	return dst
}

// AppendHeader appends an RTP fixed header without CSRCs or extension.
func AppendHeader(dst []byte, h Header) []byte {
	b1 := h.PayloadType & 0x7f
	if h.Marker {
		b1 |= 0x80
	}
	dst = append(dst, 0x80, b1)
	dst = binary.BigEndian.AppendUint16(dst, h.Sequence)
	dst = binary.BigEndian.AppendUint32(dst, h.Timestamp)
	return binary.BigEndian.AppendUint32(dst, h.SSRC)
}
