package hasync

import (
	"encoding/binary"
	"fmt"
)

// Version is the wire version this build speaks.
const Version = 1

// headerLen is the length prefix, the version and the frame type.
const headerLen = 4 + 1 + 1

// FrameType is what a frame carries.
type FrameType uint8

// Frame types.
const (
	// FrameHello opens a link: the sender's node name and an epoch that
	// changes on every start.
	FrameHello FrameType = 1
	// FrameSnapshotBegin starts a full snapshot: every key the receiver
	// holds from this sender and does not see again before
	// FrameSnapshotEnd is removed.
	FrameSnapshotBegin FrameType = 2
	// FrameRecord is one key's state (OpPut) or its removal (OpDelete).
	FrameRecord FrameType = 3
	// FrameSnapshotEnd ends a snapshot.
	FrameSnapshotEnd FrameType = 4
	// FrameAck acknowledges every frame up to Seq (receiver to sender).
	FrameAck FrameType = 5
	// FramePing asks for an Ack when the link is otherwise idle.
	FramePing FrameType = 6
)

// Kind names a kind of replicated state.
type Kind uint8

// Kinds of state.
const (
	KindMedia        Kind = 1 // relay sessions
	KindRegistration Kind = 2 // registrar bindings with their NAT flows
	KindDialog       Kind = 3 // SIP dialogs of calls in progress
)

func (k Kind) String() string {
	switch k {
	case KindMedia:
		return "media"
	case KindRegistration:
		return "registration"
	case KindDialog:
		return "dialog"
	case KindTURN:
		return "turn"
	case KindH323Call:
		return "h323-call"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// Op is what a record does.
type Op uint8

// Record operations.
const (
	OpPut    Op = 1
	OpDelete Op = 2
)

// MaxKey caps a record's key.
const MaxKey = 1024

// Frame is one decoded frame. Key and Body alias the parsed buffer.
type Frame struct {
	Type FrameType
	// Seq numbers the sender's frames (SnapshotBegin, Record, SnapshotEnd,
	// Ping), and in an Ack the last one applied.
	Seq uint64
	// Node and Epoch are a Hello's.
	Node  string
	Epoch uint64
	// Kind, Op, Key and Body are a Record's.
	Kind Kind
	Op   Op
	Key  string
	Body []byte
}

// Append encodes f and appends it to dst.
func Append(dst []byte, f *Frame) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, Version, byte(f.Type))
	switch f.Type {
	case FrameHello:
		dst = binary.BigEndian.AppendUint64(dst, f.Epoch)
		dst = append(dst, f.Node...)
	case FrameRecord:
		dst = binary.BigEndian.AppendUint64(dst, f.Seq)
		dst = append(dst, byte(f.Kind), byte(f.Op))
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(f.Key)))
		dst = append(dst, f.Key...)
		dst = append(dst, f.Body...)
	default:
		dst = binary.BigEndian.AppendUint64(dst, f.Seq)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// FrameLen returns the total length of the frame b starts with, once its
// 4-byte length prefix is complete; max caps it.
func FrameLen(b []byte, max int) (int, error) {
	if len(b) < 4 {
		return 0, ErrShort
	}
	n := binary.BigEndian.Uint32(b)
	if n < headerLen-4 {
		return 0, fmt.Errorf("%w: length %d", ErrFrame, n)
	}
	if uint64(n)+4 > uint64(max) {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, uint64(n)+4, max)
	}
	return int(n) + 4, nil
}

// Parse decodes the frame b starts with and returns it with the number of
// bytes it took; max caps the frame's length. A short buffer returns
// ErrShort; anything malformed an error wrapping ErrFrame, ErrTooLarge or
// ErrVersion. It never panics.
func Parse(b []byte, max int) (Frame, int, error) {
	var f Frame
	n, err := FrameLen(b, max)
	if err != nil {
		return f, 0, err
	}
	if len(b) < n {
		return f, 0, ErrShort
	}
	if b[4] != Version {
		return f, 0, fmt.Errorf("%w %d", ErrVersion, b[4])
	}
	f.Type = FrameType(b[5])
	p := b[headerLen:n]
	switch f.Type {
	case FrameHello:
		if len(p) < 8 || len(p)-8 > 255 {
			return f, 0, fmt.Errorf("%w: hello of %d bytes", ErrFrame, len(p))
		}
		f.Epoch = binary.BigEndian.Uint64(p)
		f.Node = string(p[8:])
	case FrameRecord:
		if len(p) < 12 {
			return f, 0, fmt.Errorf("%w: record of %d bytes", ErrFrame, len(p))
		}
		f.Seq = binary.BigEndian.Uint64(p)
		f.Kind, f.Op = Kind(p[8]), Op(p[9])
		if f.Op != OpPut && f.Op != OpDelete {
			return f, 0, fmt.Errorf("%w: op %d", ErrFrame, f.Op)
		}
		kl := int(binary.BigEndian.Uint16(p[10:]))
		if kl > MaxKey || kl > len(p)-12 {
			return f, 0, fmt.Errorf("%w: key of %d bytes", ErrFrame, kl)
		}
		f.Key = string(p[12 : 12+kl])
		f.Body = p[12+kl:]
		if f.Op == OpDelete && len(f.Body) != 0 {
			return f, 0, fmt.Errorf("%w: delete with a body", ErrFrame)
		}
	case FrameSnapshotBegin, FrameSnapshotEnd, FrameAck, FramePing:
		if len(p) != 8 {
			return f, 0, fmt.Errorf("%w: %d bytes after type %d", ErrFrame, len(p), f.Type)
		}
		f.Seq = binary.BigEndian.Uint64(p)
	default:
		return f, 0, fmt.Errorf("%w: type %d", ErrFrame, f.Type)
	}
	return f, n, nil
}
