package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/portico-edge/portico/internal/certs"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/store"
)

// The import rule. The store's active version is the truth; a file is
// imported into it only
//   - on the first start (the store holds no version), or
//   - when the file changed since this node last imported it and nothing
//     newer was stored by anyone else (the active version is this node's
//     own file import or the first-start defaults): no API edit and no
//     other node's import is ever reverted by a start,
//   - or when forced (serve --force-import, portico config import --force).
// Otherwise the file is left out: unchanged since its import (by this
// node or, in a cluster, by another), it is simply behind the versions
// stored since (info); changed, it is refused (warning naming both
// versions). SIGHUP and `portico config import` follow the same rule.
//
// A node's imports carry its name in the author (config.NodeFileAuthor);
// an import without a name is taken as the node's own, since before
// clusters one node ran on a store.

// FileImport.State values.
const (
	FileImported  = "imported"  // first start, or file changed with no newer API edit
	FileForced    = "forced"    // imported over a newer API edit
	FileUnchanged = "unchanged" // the file is the active version
	FileBehind    = "behind"    // file unchanged since imported; newer API edits kept
	FileRefused   = "refused"   // file changed, but a newer API edit is active
)

// importVersionsN is how many versions back the last import is looked for.
const importVersionsN = 1000

// FileImport is what happened to the configuration file at the last start
// or SIGHUP; the status API shows it.
type FileImport struct {
	File   string `json:"file"`
	State  string `json:"state"`
	Detail string `json:"detail"`
}

// importPlan is the rule's verdict for one file.
type importPlan struct {
	doImport bool
	result   FileImport
}

// planImport applies the import rule to a file whose SHA-256 is sum,
// imported by the node called node. active is the store's active version
// (hasActive false on an empty store).
func planImport(ctx context.Context, st store.Store, file, node, sum string, active store.ConfigVersion, hasActive, force bool) (importPlan, error) {
	p := importPlan{result: FileImport{File: file}}
	if !hasActive {
		p.doImport, p.result.State, p.result.Detail = true, FileImported, "first start: the file is the first version"
		return p, nil
	}
	if active.SHA256 == sum {
		p.result.State, p.result.Detail = FileUnchanged, fmt.Sprintf("the file is the active version %d", active.Version)
		return p, nil
	}
	vs, err := st.ConfigVersions(ctx, importVersionsN)
	if err != nil {
		return p, fmt.Errorf("read config versions: %w", err)
	}
	// Without a node (portico config import, an explicit act) every file
	// import counts as its own.
	own := func(o config.Origin) bool {
		return o.Source == config.SourceFile && (node == "" || o.Node == "" || o.Node == node)
	}
	// last is this node's newest import; seen, the newest import by any
	// node of a document equal to the file.
	var last, seen *store.ConfigVersion
	for i := range vs {
		o := config.OriginOf(vs[i].Author)
		if last == nil && own(o) {
			last = &vs[i]
		}
		if seen == nil && o.Source == config.SourceFile && vs[i].SHA256 == sum {
			seen = &vs[i]
		}
	}
	ao := config.OriginOf(active.Author)
	activeDesc := fmt.Sprintf("version %d (%s by %s)", active.Version, ao.Source, ao.Author)
	switch {
	case force:
		p.doImport, p.result.State, p.result.Detail = true, FileForced, "forced import over the active "+activeDesc
	case last != nil && last.SHA256 == sum:
		p.result.State = FileBehind
		p.result.Detail = fmt.Sprintf("the file is unchanged since it was imported as version %d; the newer active %s stays", last.Version, activeDesc)
	case seen != nil && !own(config.OriginOf(seen.Author)):
		p.result.State = FileBehind
		p.result.Detail = fmt.Sprintf("the file is version %d, imported by node %s; the newer active %s stays", seen.Version, config.OriginOf(seen.Author).Node, activeDesc)
	case ao.Source == config.SourceDefaults || own(ao):
		p.doImport, p.result.State = true, FileImported
		p.result.Detail = "the file changed and nothing newer than the active " + activeDesc + " was stored"
	default:
		since := "the file was never imported"
		if last != nil {
			since = fmt.Sprintf("the file changed since it was imported as version %d", last.Version)
		}
		p.result.State = FileRefused
		p.result.Detail = fmt.Sprintf("%s, but the active %s is newer; keeping version %d (import anyway with serve --force-import or portico config import --force)", since, activeDesc, active.Version)
	}
	return p, nil
}

// Import is `portico config import`: it validates doc (the file at path)
// as a live load would, applies the import rule against st, and stores doc
// as the new active version when the rule (or force) allows. by names who
// ran it. A running node takes the new version up on SIGHUP or restart.
func Import(ctx context.Context, st store.Store, path string, doc []byte, force bool, by string) (store.ConfigVersion, FileImport, error) {
	cs := certs.NewStore(certs.Options{Persister: certPersister{st}})
	if err := cs.Load(ctx); err != nil {
		return store.ConfigVersion{}, FileImport{}, fmt.Errorf("load certificates: %w", err)
	}
	if _, err := validate(doc, serviceDeps{log: slog.New(slog.DiscardHandler), st: st, certs: cs, env: os.Getenv}); err != nil {
		return store.ConfigVersion{}, FileImport{}, err
	}
	active, err := st.ActiveConfig(ctx)
	hasActive := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.ConfigVersion{}, FileImport{}, fmt.Errorf("read active config: %w", err)
	}
	plan, err := planImport(ctx, st, path, "", sum(doc), active, hasActive, force)
	if err != nil {
		return store.ConfigVersion{}, FileImport{}, err
	}
	if !plan.doImport {
		if plan.result.State == FileRefused {
			return active, plan.result, fmt.Errorf("%w: %s", ErrImportRefused, plan.result.Detail)
		}
		return active, plan.result, nil
	}
	v, err := st.PutConfig(ctx, doc, config.FileAuthor(path), "imported with portico config import by "+by, active.Version)
	if err != nil {
		return store.ConfigVersion{}, FileImport{}, fmt.Errorf("store config: %w", err)
	}
	return v, plan.result, nil
}
