package hasync

import "github.com/portico-edge/portico/internal/turn"

// KindTURN is the kind of TURN allocations (UDP clients, UDP relays).
const KindTURN Kind = 4

// TURN replicates TURN allocations. On the node that holds them it is the
// Source (wire turn.Deps.OnChange to Changed with KindTURN); on the peer it
// is the Sink, whose TURN server keeps each allocation as a standby copy
// bound to the same relayed address (turn.Server.ImportAllocation).
type TURN struct {
	Server *turn.Server
}

var (
	_ Source = TURN{}
	_ Sink   = TURN{}
)

// Keys lists the allocations the node's TURN engine holds.
func (t TURN) Keys() []string { return t.Server.AllocationKeys() }

// Export encodes an allocation's state (JSON), its long-term key included:
// the link is a mutually authenticated TLS connection.
func (t TURN) Export(key string) ([]byte, bool) { return exportJSON(t.Server.ExportAllocation(key)) }

// Apply creates or updates the standby copy of the peer's allocation.
func (t TURN) Apply(key string, body []byte) error {
	return applyJSON("turn", key, body, func(st *turn.AllocationState) string { return st.RecordKey() }, t.Server.ImportAllocation)
}

// Remove drops the standby copy of the peer's allocation.
func (t TURN) Remove(key string) error {
	t.Server.ForgetAllocation(key)
	return nil
}
