package app

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/sqlite"
)

// TestImportRuleInCluster: a start imports its file only over its own
// import (or the defaults); another node's import and an API edit stay,
// and a file equal to another node's import is behind, not refused.
func TestImportRuleInCluster(t *testing.T) {
	type put struct{ doc, author string }
	const f = "/etc/portico.yaml"
	tests := []struct {
		name  string
		hist  []put
		node  string
		file  string
		state string
	}{
		{"own import, file changed", []put{{"a1", config.NodeFileAuthor(f, "a")}}, "a", "a2", FileImported},
		{"legacy import counts as own", []put{{"a1", config.FileAuthor(f)}}, "a", "a2", FileImported},
		{"defaults", []put{{"d", config.DefaultsAuthor}}, "a", "a2", FileImported},
		{"other node's import stays", []put{{"a1", config.NodeFileAuthor(f, "a")}}, "b", "b1", FileRefused},
		{"other node imported this file", []put{{"a1", config.NodeFileAuthor(f, "a")}, {"x", "admin"}}, "b", "a1", FileBehind},
		{"api edit stays", []put{{"b1", config.NodeFileAuthor(f, "b")}, {"x", "admin"}}, "b", "b2", FileRefused},
		{"own file behind api edit", []put{{"b1", config.NodeFileAuthor(f, "b")}, {"x", "admin"}}, "b", "b1", FileBehind},
		{"unchanged", []put{{"a1", config.NodeFileAuthor(f, "a")}}, "b", "a1", FileUnchanged},
		{"explicit import without a node", []put{{"a1", config.NodeFileAuthor(f, "a")}}, "", "c1", FileImported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var active store.ConfigVersion
			for _, p := range tc.hist {
				if active, err = st.PutConfig(ctx, []byte(p.doc), p.author, "", active.Version); err != nil {
					t.Fatal(err)
				}
			}
			plan, err := planImport(ctx, st, f, tc.node, sum([]byte(tc.file)), active, true, false)
			if err != nil {
				t.Fatal(err)
			}
			if plan.result.State != tc.state || plan.doImport != (tc.state == FileImported) {
				t.Errorf("state %s (import %v), want %s: %s", plan.result.State, plan.doImport, tc.state, plan.result.Detail)
			}
		})
	}
}
