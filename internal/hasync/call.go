package hasync

import "github.com/portico-edge/portico/internal/sipedge"

// Calls replicates the SIP edge's answered calls: both dialogs, the relay
// session and what the call's history row needs. On the node that holds
// the calls it is the Source (wire sipedge.Deps.OnCall to Changed with
// KindDialog); on the peer it is the Sink, which keeps each call dormant
// until a request within one of its dialogs reaches it.
type Calls struct {
	Server *sipedge.Server
}

var (
	_ Source = Calls{}
	_ Sink   = Calls{}
)

// Keys lists the answered calls the node holds itself.
func (c Calls) Keys() []string { return c.Server.CallKeys() }

// Export encodes a call (JSON).
func (c Calls) Export(key string) ([]byte, bool) { return exportJSON(c.Server.ExportCall(key)) }

// Apply keeps the peer's call dormant.
func (c Calls) Apply(key string, body []byte) error {
	return applyJSON("call", key, body, func(st *sipedge.CallState) string { return st.ID }, c.Server.ImportCall)
}

// Remove forgets the peer's call: the peer ended it and wrote its history.
func (c Calls) Remove(key string) error {
	c.Server.ForgetCall(key)
	return nil
}

// Prune handles a call the restarted peer no longer holds: it lost the
// call, which did not end (sipedge.Server.LoseCall).
func (c Calls) Prune(key string) error {
	c.Server.LoseCall(key)
	return nil
}
