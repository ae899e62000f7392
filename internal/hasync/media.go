package hasync

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/portico-edge/portico/internal/media"
)

// Media replicates relay sessions. On the node that holds the calls it is
// the Source (wire Relay.OnChange to Changed with MediaKey); on the peer
// it is the Sink, whose relay keeps each session as a standby copy bound
// to the same addresses (media.Relay.Import).
type Media struct {
	Relay *media.Relay
}

var (
	_ Source = Media{}
	_ Sink   = Media{}
)

// MediaKey is the record key of a relay session.
func MediaKey(id media.SessionID) string { return strconv.FormatUint(uint64(id), 10) }

func parseMediaKey(key string) (media.SessionID, error) {
	n, err := strconv.ParseUint(key, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("hasync: media key %q is not a session ID", key)
	}
	return media.SessionID(n), nil
}

// Keys lists the live sessions.
func (m Media) Keys() []string {
	ids := m.Relay.SessionIDs()
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = MediaKey(id)
	}
	return out
}

// Export encodes a session's state (JSON).
func (m Media) Export(key string) ([]byte, bool) {
	id, err := parseMediaKey(key)
	if err != nil {
		return nil, false
	}
	st, ok := m.Relay.Export(id)
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(st)
	return b, err == nil
}

// Apply creates or updates the standby copy of the peer's session.
func (m Media) Apply(key string, body []byte) error {
	id, err := parseMediaKey(key)
	if err != nil {
		return err
	}
	var st media.SessionState
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("hasync: media %s: %w", key, err)
	}
	if st.ID != id {
		return fmt.Errorf("hasync: media %s: body names session %v", key, st.ID)
	}
	return m.Relay.Import(st)
}

// Remove drops the standby copy of the peer's session.
func (m Media) Remove(key string) error {
	id, err := parseMediaKey(key)
	if err != nil {
		return err
	}
	m.Relay.Forget(id)
	return nil
}
