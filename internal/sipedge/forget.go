package sipedge

// Forget removes the live bindings of aor reached at contact (every
// binding of aor when contact is empty) and returns how many it removed,
// or ErrNoBinding. Calls to the address of record are no longer routed over
// the forgotten flows; the inside registrar keeps its own binding until it
// expires there, and the endpoint's next REGISTER makes a new binding. Each
// removal is recorded in history as unregistered.
func (s *Server) Forget(aor, contact string) (int, error) {
	r := s.regs
	var gone []*binding
	r.mu.Lock()
	for k, b := range r.byAOR[aor] {
		if contact == "" || b.Contact == contact {
			r.del(k)
			gone = append(gone, b)
		}
	}
	n := len(r.b)
	r.mu.Unlock()
	if len(gone) == 0 {
		return 0, ErrNoBinding
	}
	s.m.registrations.Set(float64(n))
	for _, b := range gone {
		r.event(b.RegistrationInfo, "unregistered", 0, "binding forgotten by an administrator")
	}
	return len(gone), nil
}
