package sipedge

import (
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"
)

// RegistrationState is a binding's replicable state: what the HA peer
// needs to keep the registration (and reach the endpoint on its NAT flow)
// after a failover, without the endpoint registering again.
type RegistrationState struct {
	Info RegistrationInfo
	Flow Flow
	// Contact is the endpoint's Contact header value as it registered it.
	Contact string
}

// Key is the binding's key (RegistrationKeys, ExportRegistration).
func (st RegistrationState) Key() string { return bindingKey(st.Info.AOR, st.Info.Contact) }

// changed reports a binding to Deps.OnRegistration unless it is being
// imported from the peer. r.mu is held.
func (r *registrar) changed(key string) {
	if f := r.s.deps.OnRegistration; f != nil && !r.importing {
		f(key)
	}
}

// RegistrationKeys lists the keys of the bindings this node registered
// (not those imported from the HA peer).
func (s *Server) RegistrationKeys() []string {
	s.regs.mu.Lock()
	defer s.regs.mu.Unlock()
	out := make([]string, 0, len(s.regs.b))
	for k, b := range s.regs.b {
		if !b.imported {
			out = append(out, k)
		}
	}
	return out
}

// ExportRegistration returns the state of a binding this node registered,
// false when there is none (or it was imported from the peer).
func (s *Server) ExportRegistration(key string) (RegistrationState, bool) {
	s.regs.mu.Lock()
	defer s.regs.mu.Unlock()
	b := s.regs.b[key]
	if b == nil || b.imported {
		return RegistrationState{}, false
	}
	return RegistrationState{Info: b.RegistrationInfo, Flow: b.flow, Contact: b.contact.Value()}, true
}

// ImportRegistration keeps a binding the HA peer registered, as if this
// node had relayed it: calls from it are classified as registered, a
// refresh through this node continues it, and it expires at the same
// time. Only UDP flows are kept: a TCP, TLS or WebSocket flow is a
// connection to the peer, lost with it, and its endpoint registers again.
// An imported binding is not replicated back. It records no event: the
// peer recorded the registration.
func (s *Server) ImportRegistration(st RegistrationState) error {
	if st.Flow.Transport != "udp" || !st.Flow.Source.IsValid() || st.Info.AOR == "" || st.Info.Contact == "" {
		return fmt.Errorf("sipedge: import registration %q: %w", st.Info.AOR, ErrNotReplicable)
	}
	c := sip.ContactHeader{Params: sip.NewParams()}
	name, err := sip.ParseAddressValue(st.Contact, &c.Address, &c.Params)
	if err != nil {
		return fmt.Errorf("sipedge: import registration %q: contact: %w", st.Info.AOR, err)
	}
	c.DisplayName = name
	if time.Now().After(st.Info.Expires) {
		return nil
	}
	key := st.Key()
	s.regs.mu.Lock()
	s.regs.importing = true
	if old := s.regs.b[key]; old == nil || old.imported {
		s.regs.put(key, &binding{RegistrationInfo: st.Info, flow: st.Flow, contact: c, imported: true})
	}
	s.regs.importing = false
	n := len(s.regs.b)
	s.regs.mu.Unlock()
	s.m.registrations.Set(float64(n))
	return nil
}

// ForgetRegistration removes a binding imported from the HA peer (the
// peer removed it); a binding this node holds itself is kept.
func (s *Server) ForgetRegistration(key string) {
	s.regs.mu.Lock()
	if b := s.regs.b[key]; b != nil && b.imported {
		s.regs.importing = true
		s.regs.del(key)
		s.regs.importing = false
	}
	n := len(s.regs.b)
	s.regs.mu.Unlock()
	s.m.registrations.Set(float64(n))
}
