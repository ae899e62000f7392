package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// jsonKeys returns the top-level keys of one JSON record, in order, with
// repeats.
func jsonKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	var keys []string
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return keys
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
			}
		case string:
			if depth == 1 {
				keys = append(keys, v)
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return keys
				}
			}
		}
	}
}

// TestOneValuePerKey: a logger given to a service with Component, which
// adds its own component attribute again, and a record repeating a key,
// write each key once (the later value wins); groups keep their own keys.
func TestOneValuePerKey(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := New(Config{Format: format, Stderr: &buf})
			if err != nil {
				t.Fatal(err)
			}
			svc := Component(l.Logger, "media").With("component", "media", "node", "a")
			svc.Info("one", "node", "b")
			svc.WithGroup("g").Info("two", "component", "inner")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("records: %q", lines)
			}
			if format == "text" {
				if n := strings.Count(lines[0], "component="); n != 1 || strings.Count(lines[0], "node=") != 1 || !strings.Contains(lines[0], "node=b") {
					t.Errorf("record %q", lines[0])
				}
				return
			}
			keys := jsonKeys(t, lines[0])
			seen := map[string]int{}
			for _, k := range keys {
				seen[k]++
			}
			if seen["component"] != 1 || seen["node"] != 1 || !strings.Contains(lines[0], `"node":"b"`) {
				t.Errorf("keys %v in %s", keys, lines[0])
			}
			if !strings.Contains(lines[1], `"component":"media"`) || !strings.Contains(lines[1], `"g":{"component":"inner"}`) {
				t.Errorf("grouped record %s", lines[1])
			}
		})
	}
}
