package hasync

import (
	"encoding/json"
	"testing"
	"time"
)

// TestRegistrationsApplyBothEncodings: the binary body this build sends
// and the JSON body of an older peer both import; a garbled body is
// refused.
func TestRegistrationsApplyBothEncodings(t *testing.T) {
	srv := testEdge(t, 30400)
	sink := Registrations{Server: srv}
	bin := testRegistration()
	bin.Info.Expires = time.Now().Add(time.Hour)
	old := bin
	old.Info.AOR, old.Info.Contact = "sip:bob@portico.test", "sip:bob@198.51.100.8:5060"
	oldBody, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Apply(bin.Key(), appendRegistration(nil, &bin)); err != nil {
		t.Fatalf("binary: %v", err)
	}
	if err := sink.Apply(old.Key(), oldBody); err != nil {
		t.Fatalf("json: %v", err)
	}
	if got := len(srv.Registrations()); got != 2 {
		t.Fatalf("%d registrations imported, want 2", got)
	}
	if err := sink.Apply(bin.Key(), []byte{regBinary, 5, 'a'}); err == nil {
		t.Fatal("garbled body accepted")
	}
	if err := sink.Apply(old.Key(), appendRegistration(nil, &bin)); err == nil {
		t.Fatal("body of another binding accepted")
	}
}
