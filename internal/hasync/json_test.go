package hasync

import (
	"errors"
	"testing"

	"github.com/portico-edge/portico/internal/h323proxy"
)

// TestApplyJSON: a record's body reaches the service only when it decodes
// and names the record's key.
func TestApplyJSON(t *testing.T) {
	body, ok := exportJSON(h323proxy.CallState{ID: "c1", From: "room-7"}, true)
	if !ok {
		t.Fatal("not exported")
	}
	if _, ok := exportJSON(h323proxy.CallState{}, false); ok {
		t.Error("a state that is gone was exported")
	}
	name := func(st *h323proxy.CallState) string { return st.ID }
	for _, tc := range []struct {
		name, key string
		body      []byte
		applied   bool
	}{
		{"matching key", "c1", body, true},
		{"another key", "c2", body, false},
		{"not JSON", "c1", []byte("\x00\x01"), false},
		{"truncated", "c1", body[:len(body)/2], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got h323proxy.CallState
			errApplied := errors.New("applied")
			err := applyJSON("h323 call", tc.key, tc.body, name, func(st h323proxy.CallState) error {
				got = st
				return errApplied
			})
			if applied := errors.Is(err, errApplied); applied != tc.applied {
				t.Fatalf("applied %v, want %v (err %v)", applied, tc.applied, err)
			}
			if tc.applied && (got.ID != "c1" || got.From != "room-7") {
				t.Errorf("applied %+v", got)
			}
		})
	}
}
