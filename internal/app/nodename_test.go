package app

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestNodeNameChangeIsPending: a change of node.name through the API is
// not taken by the running node (its lease, certificate and logs carry the
// start name): it is listed in pending_restart and the status keeps the
// running name; a restart runs the new name.
func TestNodeNameChangeIsPending(t *testing.T) {
	n := newNode(t)
	n.write(n.doc("info"))
	a := n.mustStart(Options{})
	ctx := context.Background()
	if _, _, err := a.Replace(ctx, []byte(strings.Replace(n.doc("info"), "name: n1", "name: n2", 1)), "alice", "", 1); err != nil {
		t.Fatal(err)
	}
	st := a.status(ctx)
	if p, _ := st["pending_restart"].([]string); !slices.Contains(p, "node.name") {
		t.Errorf("pending_restart = %v, want node.name", st["pending_restart"])
	}
	if st["node"] != "n1" {
		t.Errorf("status names the node %v while it runs as n1", st["node"])
	}
	a.Close()
	// The unchanged file is behind the API's change: the store's version,
	// with its name, runs.
	a = n.mustStart(Options{})
	defer a.Close()
	if st := a.status(ctx); st["node"] != "n2" || len(st["pending_restart"].([]string)) != 0 {
		t.Errorf("after a restart: node %v, pending %v", st["node"], st["pending_restart"])
	}
}
