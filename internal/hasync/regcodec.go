package hasync

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/portico-edge/portico/internal/sipedge"
)

// regBinary tags a registration body in the binary encoding (version 1).
// A JSON body starts with '{' and is still accepted, so a node reads the
// records of a peer that runs an older build.
const regBinary = 0x01

// appendRegistration encodes st after dst: the tag, the nine strings of
// the binding (each a uvarint length and its bytes), its three times
// (a presence byte, then Unix nanoseconds as 8 bytes big-endian) and the
// flow's source address (a uvarint length and netip.AddrPort's binary
// form).
func appendRegistration(dst []byte, st *sipedge.RegistrationState) []byte {
	dst = append(dst, regBinary)
	for _, s := range [...]string{st.Info.AOR, st.Info.Contact, st.Info.Source, st.Info.Transport,
		st.Info.FlowToken, st.Info.UserAgent, st.Flow.Transport, st.Contact} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	for _, t := range [...]time.Time{st.Info.Registered, st.Info.Refreshed, st.Info.Expires} {
		if t.IsZero() {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, 1)
		dst = binary.BigEndian.AppendUint64(dst, uint64(t.UnixNano()))
	}
	ap, _ := st.Flow.Source.MarshalBinary()
	dst = binary.AppendUvarint(dst, uint64(len(ap)))
	return append(dst, ap...)
}

// parseRegistration decodes a body appendRegistration wrote. Every length
// is checked against what is left; it never panics.
func parseRegistration(b []byte) (sipedge.RegistrationState, error) {
	var st sipedge.RegistrationState
	if len(b) == 0 || b[0] != regBinary {
		return st, fmt.Errorf("%w: registration encoding", ErrFrame)
	}
	p := b[1:]
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, fmt.Errorf("%w: registration field past the end", ErrFrame)
		}
		v := p[k : k+int(n)]
		p = p[k+int(n):]
		return v, nil
	}
	for _, s := range [...]*string{&st.Info.AOR, &st.Info.Contact, &st.Info.Source, &st.Info.Transport,
		&st.Info.FlowToken, &st.Info.UserAgent, &st.Flow.Transport, &st.Contact} {
		v, err := field()
		if err != nil {
			return st, err
		}
		*s = string(v)
	}
	for _, t := range [...]*time.Time{&st.Info.Registered, &st.Info.Refreshed, &st.Info.Expires} {
		if len(p) == 0 {
			return st, fmt.Errorf("%w: registration time past the end", ErrFrame)
		}
		set := p[0]
		p = p[1:]
		switch set {
		case 0:
		case 1:
			if len(p) < 8 {
				return st, fmt.Errorf("%w: registration time past the end", ErrFrame)
			}
			*t = time.Unix(0, int64(binary.BigEndian.Uint64(p)))
			p = p[8:]
		default:
			return st, fmt.Errorf("%w: registration time flag %d", ErrFrame, set)
		}
	}
	ap, err := field()
	if err != nil {
		return st, err
	}
	var src netip.AddrPort
	if err := src.UnmarshalBinary(ap); err != nil {
		return st, fmt.Errorf("%w: registration flow: %v", ErrFrame, err)
	}
	st.Flow.Source = src
	if len(p) != 0 {
		return st, fmt.Errorf("%w: %d bytes after the registration", ErrFrame, len(p))
	}
	return st, nil
}
