package field

import (
	"errors"
	"fmt"
	"testing"
)

func TestAs(t *testing.T) {
	var es Errors
	es.Add("sip.listeners[1].address", "%d is not a port", 70000)
	es.Add("sip.call_servers", "needs at least one inside call server")
	sentinel := errors.New("svc: invalid config")
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"list", es, 2},
		{"wrapped list", fmt.Errorf("%w: %w", sentinel, es), 2},
		{"one error", fmt.Errorf("x: %w", Error{Path: "a.b", Reason: "r; with: punctuation"}), 1},
		{"none", sentinel, 0},
		{"nil list", Errors(nil).Err(), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := As(tc.err)
			if len(got) != tc.want || ok != (tc.want > 0) {
				t.Fatalf("As = %v, %v; want %d errors", got, ok, tc.want)
			}
			if tc.want == 1 && (got[0].Path != "a.b" || got[0].Reason != "r; with: punctuation") {
				t.Errorf("As = %+v: path and reason must come through unsplit", got[0])
			}
		})
	}
	if s := es.Error(); s != "sip.listeners[1].address: 70000 is not a port; sip.call_servers: needs at least one inside call server" {
		t.Errorf("Error() = %q", s)
	}
	if s := (Error{Path: "log.level", Line: 3, Column: 9, Reason: "bad"}).Error(); s != "log.level (line 3, column 9): bad" {
		t.Errorf("Error() = %q", s)
	}
}
