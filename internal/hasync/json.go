package hasync

import (
	"encoding/json"
	"fmt"
)

// exportJSON encodes the state a service exported (st, when ok) as a
// record's body.
func exportJSON[T any](st T, ok bool) ([]byte, bool) {
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(st)
	return b, err == nil
}

// applyJSON decodes a record's body into a T, checks that it names key
// (name gives the key the state names), and hands it to apply; what
// names the kind in errors.
func applyJSON[T any](what, key string, body []byte, name func(*T) string, apply func(T) error) error {
	var st T
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("hasync: %s %s: %w", what, key, err)
	}
	if n := name(&st); n != key {
		return fmt.Errorf("hasync: %s %s: body names %q", what, key, n)
	}
	return apply(st)
}
