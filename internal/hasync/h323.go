package hasync

import "github.com/portico-edge/portico/internal/h323proxy"

// KindH323Call is the kind of answered H.323 calls.
const KindH323Call Kind = 5

// H323Calls replicates the H.323 edge's answered calls: call ID, parties,
// both call-signalling legs' addresses, the answer time and the relay
// session (whose media is replicated as KindMedia, labelled with the call
// ID). On the node that holds the calls it is the Source (wire
// h323proxy.Deps.OnCall to Changed with KindH323Call); on the peer it is
// the Sink, which writes a call's one history row once the call's
// addresses are on the peer and its media stopped. H.225.0 call
// signalling is TCP: the connections end with the node that held them.
type H323Calls struct {
	Server *h323proxy.Server
}

var (
	_ Source = H323Calls{}
	_ Sink   = H323Calls{}
)

// Keys lists the answered calls the node holds itself.
func (c H323Calls) Keys() []string { return c.Server.CallKeys() }

// Export encodes a call (JSON).
func (c H323Calls) Export(key string) ([]byte, bool) { return exportJSON(c.Server.ExportCall(key)) }

// Apply keeps the peer's call.
func (c H323Calls) Apply(key string, body []byte) error {
	return applyJSON("h323 call", key, body, func(st *h323proxy.CallState) string { return st.ID }, c.Server.ImportCall)
}

// Remove forgets the peer's call: the peer ended it and wrote its history.
func (c H323Calls) Remove(key string) error {
	c.Server.ForgetCall(key)
	return nil
}

// Prune handles a call the restarted peer no longer holds
// (h323proxy.Server.LoseCall).
func (c H323Calls) Prune(key string) error {
	c.Server.LoseCall(key)
	return nil
}
