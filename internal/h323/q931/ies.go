package q931

import "fmt"

// UserUserX208 is the user-user protocol discriminator H.225.0 uses:
// "X.208 and X.209 coded user information" (Q.931 Table 4-26).
const UserUserX208 = 0x05

// UserUser returns the H323-UserInformation bytes of the user-user IE.
func (m *Message) UserUser() ([]byte, error) {
	d, ok := m.Get(IEUserUser)
	if !ok {
		return nil, fmt.Errorf("%w: user-user", ErrNoIE)
	}
	if len(d) < 1 {
		return nil, fmt.Errorf("%w: empty user-user", ErrFormat)
	}
	if d[0] != UserUserX208 {
		return nil, fmt.Errorf("%w: user-user protocol discriminator %#x", ErrFormat, d[0])
	}
	return d[1:], nil
}

// SetUserUser sets the user-user IE to carry the encoded
// H323-UserInformation uuie.
func (m *Message) SetUserUser(uuie []byte) {
	d := make([]byte, 0, len(uuie)+1)
	d = append(d, UserUserX208)
	m.Set(IEUserUser, append(d, uuie...))
}

// Display returns the display IE (IA5 characters).
func (m *Message) Display() (string, bool) {
	d, ok := m.Get(IEDisplay)
	return string(d), ok
}

// SetDisplay sets the display IE.
func (m *Message) SetDisplay(s string) { m.Set(IEDisplay, []byte(s)) }

// Number is a called or calling party number (Q.931 §4.5.8, §4.5.10).
type Number struct {
	Type byte // type of number, 3 bits (0 unknown, 1 international, 2 national, 4 subscriber)
	Plan byte // numbering plan, 4 bits (1 E.164, 9 private)
	// HasScreening marks octet 3a (calling party only): presentation and
	// screening indicators.
	HasScreening bool
	Presentation byte
	Screening    byte
	Digits       string
}

// ParseNumber decodes the contents of a party number IE.
func ParseNumber(d []byte) (Number, error) {
	var n Number
	if len(d) < 1 {
		return n, fmt.Errorf("%w: empty number", ErrShort)
	}
	n.Type = d[0] >> 4 & 0x07
	n.Plan = d[0] & 0x0f
	p := 1
	if d[0]&0x80 == 0 {
		if len(d) < 2 {
			return n, fmt.Errorf("%w: number octet 3a", ErrShort)
		}
		n.HasScreening = true
		n.Presentation = d[1] >> 5 & 0x03
		n.Screening = d[1] & 0x03
		p = 2
	}
	n.Digits = string(d[p:])
	return n, nil
}

// Append appends the IE contents of n.
func (n Number) Append(dst []byte) []byte {
	o3 := n.Type&0x07<<4 | n.Plan&0x0f
	if n.HasScreening {
		dst = append(dst, o3, 0x80|n.Presentation&0x03<<5|n.Screening&0x03)
	} else {
		dst = append(dst, 0x80|o3)
	}
	return append(dst, n.Digits...)
}

// The absent elements a proxy asks every message for: one value each,
// so that asking allocates nothing.
var (
	errNoCalled  = fmt.Errorf("%w: number %#x", ErrNoIE, IECalledPartyNumber)
	errNoCalling = fmt.Errorf("%w: number %#x", ErrNoIE, IECallingPartyNumber)
	errNoCause   = fmt.Errorf("%w: cause", ErrNoIE)
)

// Number returns the called (IECalledPartyNumber) or calling
// (IECallingPartyNumber) party number.
func (m *Message) Number(id byte) (Number, error) {
	d, ok := m.Get(id)
	if !ok {
		switch id {
		case IECalledPartyNumber:
			return Number{}, errNoCalled
		case IECallingPartyNumber:
			return Number{}, errNoCalling
		}
		return Number{}, fmt.Errorf("%w: number %#x", ErrNoIE, id)
	}
	return ParseNumber(d)
}

// SetNumber sets a party number IE.
func (m *Message) SetNumber(id byte, n Number) { m.Set(id, n.Append(nil)) }

// Cause is the cause IE (Q.931 §4.5.12): coding standard and location in
// octet 3, the cause value (e.g. 16 normal call clearing) in octet 4, and
// any diagnostics.
type Cause struct {
	Coding      byte
	Location    byte
	Value       byte
	Diagnostics []byte
}

// Cause returns the cause IE.
func (m *Message) Cause() (Cause, error) {
	d, ok := m.Get(IECause)
	if !ok {
		return Cause{}, errNoCause
	}
	if len(d) < 2 {
		return Cause{}, fmt.Errorf("%w: cause", ErrShort)
	}
	c := Cause{Coding: d[0] >> 5 & 0x03, Location: d[0] & 0x0f}
	p := 1
	if d[0]&0x80 == 0 { // octet 3a: recommendation
		p = 2
		if len(d) < 3 {
			return Cause{}, fmt.Errorf("%w: cause", ErrShort)
		}
	}
	c.Value = d[p] & 0x7f
	c.Diagnostics = d[p+1:]
	return c, nil
}

// SetCause sets the cause IE.
func (m *Message) SetCause(c Cause) {
	d := []byte{0x80 | c.Coding&0x03<<5 | c.Location&0x0f, 0x80 | c.Value&0x7f}
	m.Set(IECause, append(d, c.Diagnostics...))
}

// Progress is the progress indicator IE (Q.931 §4.5.23).
type Progress struct {
	Coding, Location, Description byte
}

// ProgressIndicator returns the progress indicator IE.
func (m *Message) ProgressIndicator() (Progress, error) {
	d, ok := m.Get(IEProgressIndicator)
	if !ok {
		return Progress{}, fmt.Errorf("%w: progress indicator", ErrNoIE)
	}
	if len(d) < 2 {
		return Progress{}, fmt.Errorf("%w: progress indicator", ErrShort)
	}
	return Progress{Coding: d[0] >> 5 & 0x03, Location: d[0] & 0x0f, Description: d[1] & 0x7f}, nil
}

// SetProgressIndicator sets the progress indicator IE.
func (m *Message) SetProgressIndicator(p Progress) {
	m.Set(IEProgressIndicator, []byte{0x80 | p.Coding&0x03<<5 | p.Location&0x0f, 0x80 | p.Description&0x7f})
}

// Bearer capabilities H.225.0 §7.2.2.1 uses: unrestricted digital
// information at 64 kbit/s with H.221/H.242 (videophone) or speech.
var (
	BearerVideo  = []byte{0x88, 0x90, 0xa5}
	BearerSpeech = []byte{0x80, 0x90, 0xa3}
)

// BearerCapability returns the information transfer capability (octet 3,
// 5 bits: 0 speech, 8 unrestricted digital, 0x10 3.1 kHz audio) of the
// bearer capability IE.
func (m *Message) BearerCapability() (byte, error) {
	d, ok := m.Get(IEBearerCapability)
	if !ok {
		return 0, fmt.Errorf("%w: bearer capability", ErrNoIE)
	}
	if len(d) < 2 {
		return 0, fmt.Errorf("%w: bearer capability", ErrShort)
	}
	return d[0] & 0x1f, nil
}
