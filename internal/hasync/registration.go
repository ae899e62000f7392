package hasync

import (
	"encoding/json"
	"fmt"

	"github.com/portico-edge/portico/internal/sipedge"
)

// Registrations replicates the SIP edge's registrations with their UDP
// flows. On the node that relayed them it is the Source (wire
// sipedge.Deps.OnRegistration to Changed with KindRegistration); on the
// peer it is the Sink. Both nodes' SIP edges must key their flow tokens
// alike (FlowSecret), or the peer cannot read the flows in the Path that
// comes back with calls to the endpoints.
type Registrations struct {
	Server *sipedge.Server
}

var (
	_ Source = Registrations{}
	_ Sink   = Registrations{}
)

// Keys lists the bindings the node registered itself.
func (r Registrations) Keys() []string { return r.Server.RegistrationKeys() }

// Export encodes a binding (appendRegistration).
func (r Registrations) Export(key string) ([]byte, bool) {
	st, ok := r.Server.ExportRegistration(key)
	if !ok {
		return nil, false
	}
	return appendRegistration(nil, &st), true
}

// Apply keeps the peer's binding.
func (r Registrations) Apply(key string, body []byte) error {
	var st sipedge.RegistrationState
	var err error
	if len(body) > 0 && body[0] == '{' {
		// The JSON of an older peer.
		err = json.Unmarshal(body, &st)
	} else {
		st, err = parseRegistration(body)
	}
	if err != nil {
		return fmt.Errorf("hasync: registration: %w", err)
	}
	if st.Key() != key {
		return fmt.Errorf("hasync: registration: body names another binding than its key")
	}
	return r.Server.ImportRegistration(st)
}

// Remove drops the peer's binding.
func (r Registrations) Remove(key string) error {
	r.Server.ForgetRegistration(key)
	return nil
}
