// Package q931 implements the call-signalling framing of H.323: TPKT
// (RFC 1006 §6) over TCP and ITU-T Q.931 (05/1998) messages as profiled
// by H.225.0 (12/2009) §7.2-7.4: Setup, Call Proceeding, Alerting, Progress (ProgressMsg),
// Connect, Release Complete, Facility, Progress, Notify, Status and their
// information elements (bearer capability, display, called/calling party
// number, cause, progress indicator, user-user with its two-octet length).
//
// Parse keeps every information element raw and in order, so Append
// reproduces the input exactly, including unknown elements; typed
// accessors read and write the elements H.225.0 uses.
package q931

import "fmt"

// ProtocolDiscriminator is the Q.931 protocol discriminator (§4.2).
const ProtocolDiscriminator = 0x08

// Message types (Q.931 §4.4, Table 4-2).
const (
	Alerting        = 0x01
	CallProceeding  = 0x02
	ProgressMsg     = 0x03
	Setup           = 0x05
	Connect         = 0x07
	SetupAck        = 0x0d
	ReleaseComplete = 0x5a
	Facility        = 0x62
	Notify          = 0x6e
	StatusEnquiry   = 0x75
	Information     = 0x7b
	Status          = 0x7d
)

// Information element identifiers (Q.931 §4.5, Table 4-3).
const (
	IEBearerCapability   = 0x04
	IECause              = 0x08
	IECallState          = 0x14
	IEFacility           = 0x1c
	IEProgressIndicator  = 0x1e
	IENotification       = 0x27
	IEDisplay            = 0x28
	IEKeypad             = 0x2c
	IESignal             = 0x34
	IECallingPartyNumber = 0x6c
	IECalledPartyNumber  = 0x70
	IERedirectingNumber  = 0x74
	IEUserUser           = 0x7e
	IESendingComplete    = 0xa1
)

// MaxIEs caps the number of information elements Parse accepts.
const MaxIEs = 64

// IE is one information element. Single-octet elements (ID ≥ 0x80) have
// no Data.
type IE struct {
	ID   byte
	Data []byte
}

// Message is a Q.931 message.
type Message struct {
	// CallRefLen is the call reference length in octets (2 in H.225.0).
	CallRefLen int
	// CallRef is the call reference value without the flag bit.
	CallRef uint32
	// FromDestination is the call reference flag: set in messages sent by
	// the side that did not originate the call reference.
	FromDestination bool
	Type            byte
	IEs             []IE
}

// Parse decodes a Q.931 message. The IE data alias b.
func Parse(b []byte) (*Message, error) {
	m := &Message{}
	if err := m.Parse(b); err != nil {
		return nil, err
	}
	return m, nil
}

// Parse decodes b into m, reusing m.IEs.
func (m *Message) Parse(b []byte) error {
	if len(b) < 3 {
		return fmt.Errorf("%w: %d octets", ErrShort, len(b))
	}
	if b[0] != ProtocolDiscriminator {
		return fmt.Errorf("%w: protocol discriminator %#x", ErrFormat, b[0])
	}
	crl := int(b[1] & 0x0f)
	if b[1]&0xf0 != 0 || crl > 4 {
		return fmt.Errorf("%w: call reference length octet %#x", ErrFormat, b[1])
	}
	if len(b) < 3+crl {
		return fmt.Errorf("%w: call reference", ErrShort)
	}
	m.CallRefLen = crl
	m.CallRef, m.FromDestination = 0, false
	for i := 0; i < crl; i++ {
		c := b[2+i]
		if i == 0 {
			m.FromDestination = c&0x80 != 0
			c &= 0x7f
		}
		m.CallRef = m.CallRef<<8 | uint32(c)
	}
	p := 2 + crl
	m.Type = b[p]
	if m.Type&0x80 != 0 {
		return fmt.Errorf("%w: message type %#x", ErrFormat, m.Type)
	}
	p++
	m.IEs = m.IEs[:0]
	for p < len(b) {
		if len(m.IEs) >= MaxIEs {
			return fmt.Errorf("%w: more than %d information elements", ErrTooLong, MaxIEs)
		}
		id := b[p]
		p++
		if id&0x80 != 0 {
			m.IEs = append(m.IEs, IE{ID: id})
			continue
		}
		var n int
		if id == IEUserUser {
			if p+2 > len(b) {
				return fmt.Errorf("%w: user-user length", ErrShort)
			}
			n = int(b[p])<<8 | int(b[p+1])
			p += 2
		} else {
			if p+1 > len(b) {
				return fmt.Errorf("%w: length of element %#x", ErrShort, id)
			}
			n = int(b[p])
			p++
		}
		if p+n > len(b) {
			return fmt.Errorf("%w: element %#x of %d octets, %d left", ErrShort, id, n, len(b)-p)
		}
		m.IEs = append(m.IEs, IE{ID: id, Data: b[p : p+n : p+n]})
		p += n
	}
	return nil
}

// Append appends the encoding of m to dst.
func (m *Message) Append(dst []byte) ([]byte, error) {
	if m.CallRefLen < 0 || m.CallRefLen > 4 {
		return dst, fmt.Errorf("%w: call reference length %d", ErrFormat, m.CallRefLen)
	}
	dst = append(dst, ProtocolDiscriminator, byte(m.CallRefLen))
	for i := m.CallRefLen - 1; i >= 0; i-- {
		c := byte(m.CallRef >> (8 * uint(i)))
		if i == m.CallRefLen-1 {
			c &= 0x7f
			if m.FromDestination {
				c |= 0x80
			}
		}
		dst = append(dst, c)
	}
	dst = append(dst, m.Type&0x7f)
	for _, ie := range m.IEs {
		switch {
		case ie.ID&0x80 != 0:
			dst = append(dst, ie.ID)
		case ie.ID == IEUserUser:
			if len(ie.Data) > 0xffff {
				return dst, fmt.Errorf("%w: user-user of %d octets", ErrTooLong, len(ie.Data))
			}
			dst = append(dst, ie.ID, byte(len(ie.Data)>>8), byte(len(ie.Data)))
			dst = append(dst, ie.Data...)
		default:
			if len(ie.Data) > 0xff {
				return dst, fmt.Errorf("%w: element %#x of %d octets", ErrTooLong, ie.ID, len(ie.Data))
			}
			dst = append(dst, ie.ID, byte(len(ie.Data)))
			dst = append(dst, ie.Data...)
		}
	}
	return dst, nil
}

// Get returns the data of the first element with the given identifier.
func (m *Message) Get(id byte) ([]byte, bool) {
	for _, ie := range m.IEs {
		if ie.ID == id {
			return ie.Data, true
		}
	}
	return nil, false
}

// Set replaces the first element with the given identifier, or inserts it
// keeping identifiers in ascending order (Q.931 §4.5.1; user-user last).
func (m *Message) Set(id byte, data []byte) {
	for i := range m.IEs {
		if m.IEs[i].ID == id {
			m.IEs[i].Data = data
			return
		}
	}
	at := len(m.IEs)
	for i, ie := range m.IEs {
		if ie.ID&0x80 == 0 && ie.ID > id {
			at = i
			break
		}
	}
	m.IEs = append(m.IEs, IE{})
	copy(m.IEs[at+1:], m.IEs[at:])
	m.IEs[at] = IE{ID: id, Data: data}
}

// Remove deletes every element with the given identifier.
func (m *Message) Remove(id byte) {
	out := m.IEs[:0]
	for _, ie := range m.IEs {
		if ie.ID != id {
			out = append(out, ie)
		}
	}
	m.IEs = out
}
