package capture

import (
	"encoding/binary"
	"net/netip"
	"os"
)

// PcapWriter writes a classic libpcap file (link type Ethernet) of
// synthesized IPv4 UDP and TCP packets with valid checksums, so that
// tshark dissects what a codec encoded.
type PcapWriter struct {
	f   *os.File
	seq map[flow]uint32
	n   uint32
}

type flow struct {
	src, dst netip.AddrPort
}

// NewPcap creates path and writes the pcap global header.
func NewPcap(path string) (*PcapWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	if _, err := f.Write(hdr); err != nil {
		f.Close()
		return nil, err
	}
	return &PcapWriter{f: f, seq: map[flow]uint32{}}, nil
}

// Close closes the file.
func (w *PcapWriter) Close() error { return w.f.Close() }

// Sync flushes what was written to the disk, so that tshark can read the
// file while it is still being written.
func (w *PcapWriter) Sync() error { return w.f.Sync() }

func checksum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// UDP writes one UDP datagram from src to dst.
func (w *PcapWriter) UDP(src, dst netip.AddrPort, payload []byte) error {
	seg := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(seg[0:], src.Port())
	binary.BigEndian.PutUint16(seg[2:], dst.Port())
	binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	copy(seg[8:], payload)
	c := fold(checksum(pseudo(src, dst, 17, len(seg)), seg))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[6:], c)
	return w.ip(src, dst, 17, seg)
}

// TCP writes one TCP segment (PSH|ACK) from src to dst, continuing the
// flow's sequence numbers.
func (w *PcapWriter) TCP(src, dst netip.AddrPort, payload []byte) error {
	k := flow{src, dst}
	seq, ok := w.seq[k]
	if !ok {
		seq = 1000
	}
	ack, ok := w.seq[flow{dst, src}]
	if !ok {
		ack = 1000
	}
	w.seq[k] = seq + uint32(len(payload))
	seg := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(seg[0:], src.Port())
	binary.BigEndian.PutUint16(seg[2:], dst.Port())
	binary.BigEndian.PutUint32(seg[4:], seq)
	binary.BigEndian.PutUint32(seg[8:], ack)
	seg[12] = 5 << 4
	seg[13] = 0x18
	binary.BigEndian.PutUint16(seg[14:], 65535)
	copy(seg[20:], payload)
	binary.BigEndian.PutUint16(seg[16:], fold(checksum(pseudo(src, dst, 6, len(seg)), seg)))
	return w.ip(src, dst, 6, seg)
}

func pseudo(src, dst netip.AddrPort, proto byte, n int) uint32 {
	s, d := src.Addr().As4(), dst.Addr().As4()
	sum := checksum(0, s[:])
	sum = checksum(sum, d[:])
	return sum + uint32(proto) + uint32(n)
}

func (w *PcapWriter) ip(src, dst netip.AddrPort, proto byte, seg []byte) error {
	pkt := make([]byte, 14+20+len(seg))
	copy(pkt[0:6], []byte{0x02, 0, 0, 0, 0, 2})
	copy(pkt[6:12], []byte{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(pkt[12:], 0x0800)
	ip := pkt[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(seg)))
	w.n++
	binary.BigEndian.PutUint16(ip[4:], uint16(w.n))
	ip[6] = 0x40
	ip[8] = 64
	ip[9] = proto
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], fold(checksum(0, ip)))
	copy(pkt[34:], seg)
	rec := make([]byte, 16)
	binary.LittleEndian.PutUint32(rec[0:], 1_700_000_000+w.n)
	binary.LittleEndian.PutUint32(rec[8:], uint32(len(pkt)))
	binary.LittleEndian.PutUint32(rec[12:], uint32(len(pkt)))
	if _, err := w.f.Write(rec); err != nil {
		return err
	}
	_, err := w.f.Write(pkt)
	return err
}
