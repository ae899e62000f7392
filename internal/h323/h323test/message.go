package h323test

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// Message is one message a simulator component received, kept for tests
// to assert on. Exactly one of RAS, Q931 and H245 is set; UUIE is the
// decoded user-user information of a Q.931 message.
type Message struct {
	// Name is "RRQ", "SCI", ... for RAS, "Setup", "Connect", "Facility",
	// ... for Q.931, and "TCS", "OLC", "OLCAck", ... for H.245 (tunnelled
	// or not).
	Name string
	From netip.AddrPort // source of the datagram or TCP connection
	To   netip.AddrPort // local address it arrived on
	RAS  *h225.RasMessage
	Q931 *q931.Message
	UUIE *h225.H323UserInformation
	H245 *h245.MultimediaSystemControlMessage
	Raw  []byte // the RAS datagram, Q.931 message or H.245 PDU
}

// msgLog is a concurrency-safe list of received messages.
type msgLog struct {
	mu   sync.Mutex
	msgs []Message
	ch   chan struct{}
}

func (l *msgLog) add(m Message) {
	l.mu.Lock()
	l.msgs = append(l.msgs, m)
	if l.ch != nil {
		close(l.ch)
		l.ch = nil
	}
	l.mu.Unlock()
}

func (l *msgLog) all() []Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Message(nil), l.msgs...)
}

// changed returns a channel closed at the next add.
func (l *msgLog) changed() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ch == nil {
		l.ch = make(chan struct{})
	}
	return l.ch
}

// Count returns how many of msgs are named name.
func Count(msgs []Message, name string) int {
	n := 0
	for _, m := range msgs {
		if m.Name == name {
			n++
		}
	}
	return n
}

// Find returns the messages of msgs named name.
func Find(msgs []Message, name string) []Message {
	var out []Message
	for _, m := range msgs {
		if m.Name == name {
			out = append(out, m)
		}
	}
	return out
}

var q931Names = map[byte]string{
	q931.Alerting: "Alerting", q931.CallProceeding: "CallProceeding", q931.ProgressMsg: "Progress",
	q931.Setup: "Setup", q931.Connect: "Connect", q931.SetupAck: "SetupAck",
	q931.ReleaseComplete: "ReleaseComplete", q931.Facility: "Facility", q931.Notify: "Notify",
	q931.StatusEnquiry: "StatusEnquiry", q931.Information: "Information", q931.Status: "Status",
}

// Q931Name returns the name of a Q.931 message type ("Setup", ...).
func Q931Name(t byte) string {
	if n, ok := q931Names[t]; ok {
		return n
	}
	return fmt.Sprintf("Q931(%#x)", t)
}

// H245Name returns a short name of an H.245 message ("TCS", "MSD",
// "OLC", "OLCAck", "EndSession", ...).
func H245Name(m *h245.MultimediaSystemControlMessage) string {
	switch {
	case m.Choice == h245.MultimediaSystemControlMessage_Request && m.Request != nil:
		switch m.Request.Choice {
		case h245.RequestMessage_TerminalCapabilitySet:
			return "TCS"
		case h245.RequestMessage_MasterSlaveDetermination:
			return "MSD"
		case h245.RequestMessage_OpenLogicalChannel:
			return "OLC"
		case h245.RequestMessage_CloseLogicalChannel:
			return "CLC"
		}
		return fmt.Sprintf("Request(%d)", m.Request.Choice)
	case m.Choice == h245.MultimediaSystemControlMessage_Response && m.Response != nil:
		switch m.Response.Choice {
		case h245.ResponseMessage_TerminalCapabilitySetAck:
			return "TCSAck"
		case h245.ResponseMessage_MasterSlaveDeterminationAck:
			return "MSDAck"
		case h245.ResponseMessage_OpenLogicalChannelAck:
			return "OLCAck"
		case h245.ResponseMessage_OpenLogicalChannelReject:
			return "OLCReject"
		}
		return fmt.Sprintf("Response(%d)", m.Response.Choice)
	case m.Choice == h245.MultimediaSystemControlMessage_Command && m.Command != nil:
		if m.Command.Choice == h245.CommandMessage_EndSessionCommand {
			return "EndSession"
		}
		return fmt.Sprintf("Command(%d)", m.Command.Choice)
	case m.Choice == h245.MultimediaSystemControlMessage_Indication:
		return "Indication"
	}
	return "H245"
}

func rasMessage(b []byte, from, to netip.AddrPort) (Message, error) {
	m, err := ras.Parse(b)
	if err != nil {
		return Message{}, err
	}
	return Message{Name: ras.Name(m), From: from, To: to, RAS: m, Raw: b}, nil
}

// sigConn is a TPKT call-signalling (or separate H.245) connection whose
// writes are serialised and recorded.
type sigConn struct {
	c   net.Conn
	rec *Recorder
	r   *q931.TPKTReader
	wmu sync.Mutex
}

func newSigConn(c net.Conn, rec *Recorder) *sigConn {
	return &sigConn{c: c, rec: rec, r: q931.NewTPKTReader(c)}
}

func (s *sigConn) from() netip.AddrPort  { return addrPort(s.c.RemoteAddr()) }
func (s *sigConn) local() netip.AddrPort { return addrPort(s.c.LocalAddr()) }

// write sends payload in one TPKT packet.
func (s *sigConn) write(payload []byte) error {
	b, err := q931.AppendTPKT(nil, payload)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, err := s.c.Write(b); err != nil {
		return err
	}
	s.rec.TCP(s.c, b)
	return nil
}

// next reads the next TPKT payload (a copy).
func (s *sigConn) next() ([]byte, error) {
	b, err := s.r.Next()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// readQ931 reads and decodes the next Q.931 message and its UUIE.
func (s *sigConn) readQ931() (Message, error) {
	b, err := s.next()
	if err != nil {
		return Message{}, err
	}
	return parseQ931(b, s.from(), s.local())
}

func parseQ931(b []byte, from, to netip.AddrPort) (Message, error) {
	q, err := q931.Parse(b)
	if err != nil {
		return Message{}, err
	}
	m := Message{Name: Q931Name(q.Type), From: from, To: to, Q931: q, Raw: b}
	if uu, err := q.UserUser(); err == nil {
		u := new(h225.H323UserInformation)
		if err := u.Unmarshal(uu); err != nil {
			return m, fmt.Errorf("h323test: %s user-user: %w", m.Name, err)
		}
		m.UUIE = u
	}
	return m, nil
}

// sendQ931 sends a Q.931 message of type typ carrying body.
func (s *sigConn) sendQ931(typ byte, ref uint32, fromDest bool, uu *h225.H323UserInformation, ies ...q931.IE) error {
	enc, err := uu.Marshal()
	if err != nil {
		return fmt.Errorf("h323test: encode %s: %w", Q931Name(typ), err)
	}
	m := &q931.Message{CallRefLen: 2, CallRef: ref, FromDestination: fromDest, Type: typ}
	for _, ie := range ies {
		m.Set(ie.ID, ie.Data)
	}
	m.SetUserUser(enc)
	b, err := m.Append(nil)
	if err != nil {
		return err
	}
	return s.write(b)
}

func (s *sigConn) close() error { return s.c.Close() }
