package ladder

import (
	"encoding/binary"
	"io"
	"net/netip"
)

// linktypeRaw is LINKTYPE_RAW: each packet starts with an IPv4 or IPv6
// header.
const linktypeRaw = 101

// maxPcapPayload keeps a packet's IP length within 16 bits.
const maxPcapPayload = 65535 - 60

// Pcap writes l's SIP messages as a capture file (pcap, microsecond
// timestamps, LINKTYPE_RAW): each message one IPv4 or IPv6 packet with a
// UDP header, or a TCP segment (PSH|ACK, sequence numbers running on per
// direction) for the stream transports, between the addresses it crossed,
// with true checksums. The packets are synthesised from what was kept:
// Wireshark dissects them as SIP, though the stream handshakes and the
// messages of other calls on a connection are not there.
func Pcap(w io.Writer, l Ladder) error {
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], linktypeRaw)
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	seq := map[[2]netip.AddrPort]uint32{}
	for _, m := range l.Messages {
		if (m.Protocol != "" && m.Protocol != "sip") || len(m.Text) > maxPcapPayload {
			continue // H.323 messages are kept as text, not bytes
		}
		src, dst := m.Remote, m.Local
		if m.Direction == Out.String() {
			src, dst = m.Local, m.Remote
		}
		src, dst = sameFamily(src, dst)
		var pkt []byte
		if m.Transport == "udp" || m.Transport == "" {
			pkt = packet(src, dst, 17, udpHeader(src, dst, []byte(m.Text)), []byte(m.Text))
		} else {
			k := [2]netip.AddrPort{src, dst}
			s, ok := seq[k]
			if !ok {
				s = 1
			}
			ack, ok := seq[[2]netip.AddrPort{dst, src}]
			if !ok {
				ack = 1
			}
			seq[k] = s + uint32(len(m.Text))
			pkt = packet(src, dst, 6, tcpHeader(src, dst, s, ack, []byte(m.Text)), []byte(m.Text))
		}
		var rec [16]byte
		ts := m.Time
		binary.LittleEndian.PutUint32(rec[0:], uint32(ts.Unix()))
		binary.LittleEndian.PutUint32(rec[4:], uint32(ts.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(pkt)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(pkt)))
		if _, err := w.Write(rec[:]); err != nil {
			return err
		}
		if _, err := w.Write(pkt); err != nil {
			return err
		}
	}
	return nil
}

// sameFamily makes both addresses IPv4 when they can be, else IPv6; an
// invalid address becomes the unspecified one of the other's family.
func sameFamily(a, b netip.AddrPort) (netip.AddrPort, netip.AddrPort) {
	fix := func(p netip.AddrPort) netip.AddrPort {
		if !p.Addr().IsValid() {
			return netip.AddrPortFrom(netip.IPv4Unspecified(), p.Port())
		}
		return netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
	}
	a, b = fix(a), fix(b)
	if a.Addr().Is4() != b.Addr().Is4() {
		to6 := func(p netip.AddrPort) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom16(p.Addr().As16()), p.Port())
		}
		a, b = to6(a), to6(b)
	}
	return a, b
}

// packet prepends the IP header to a transport header and payload.
func packet(src, dst netip.AddrPort, proto byte, th, payload []byte) []byte {
	n := len(th) + len(payload)
	var ip []byte
	if src.Addr().Is4() {
		ip = make([]byte, 20, 20+n)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+n))
		ip[6] = 0x40 // don't fragment
		ip[8] = 64
		ip[9] = proto
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], ^sum16(0, ip))
	} else {
		ip = make([]byte, 40, 40+n)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(n))
		ip[6] = proto
		ip[7] = 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	}
	ip = append(ip, th...)
	return append(ip, payload...)
}

func udpHeader(src, dst netip.AddrPort, payload []byte) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:], src.Port())
	binary.BigEndian.PutUint16(h[2:], dst.Port())
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	c := ^sum16(uint32(sum16(pseudo(src, dst, 17, 8+len(payload)), h)), payload)
	if c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(h[6:], c)
	return h
}

func tcpHeader(src, dst netip.AddrPort, seq, ack uint32, payload []byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], src.Port())
	binary.BigEndian.PutUint16(h[2:], dst.Port())
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = 5 << 4
	h[13] = 0x18 // PSH, ACK
	binary.BigEndian.PutUint16(h[14:], 65535)
	binary.BigEndian.PutUint16(h[16:], ^sum16(uint32(sum16(pseudo(src, dst, 6, 20+len(payload)), h)), payload))
	return h
}

// pseudo returns the partial checksum of the pseudo-header (RFC 768,
// RFC 793, RFC 8200 section 8.1).
func pseudo(src, dst netip.AddrPort, proto byte, n int) uint32 {
	var b []byte
	if src.Addr().Is4() {
		s, d := src.Addr().As4(), dst.Addr().As4()
		b = append(append(b, s[:]...), d[:]...)
		b = append(b, 0, proto, byte(n>>8), byte(n))
	} else {
		s, d := src.Addr().As16(), dst.Addr().As16()
		b = append(append(b, s[:]...), d[:]...)
		b = append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
	}
	return sum32(0, b)
}

// sum32 adds b as big-endian 16-bit words to s (the Internet checksum's
// running sum; b of odd length is padded with a zero byte).
func sum32(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// sum16 folds the running sum of s plus b to 16 bits.
func sum16(s uint32, b []byte) uint16 {
	s = sum32(s, b)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
