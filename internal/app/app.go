// Package app builds Portico's services from the configuration, runs them
// under one errgroup, and applies configuration changes live.
//
// The configuration lives in the store as numbered versions and the active
// (newest) one is the truth. A file given at start or on SIGHUP is imported
// only under the import rule (importfile.go): on the first start, or when
// it changed since its last import and no API edit is newer, or when
// forced. Every document is checked by Validate, which builds the services
// as a live load does, and is stored only when that passed; a change is
// then prepared (new listeners bound) and swapped in, so a refused change
// leaves the running configuration as it was.
package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/backup"
	"github.com/portico-edge/portico/internal/certs"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/logging"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/open"
	"github.com/portico-edge/portico/internal/turn"
	"github.com/portico-edge/portico/internal/web"
)

// Version is set at build time (-ldflags -X).
var Version = "dev"

// Options are what the command line gives.
type Options struct {
	// ConfigFile is imported at start and on SIGHUP under the import rule;
	// empty uses the store's active version (or the defaults on a new store).
	ConfigFile string
	// ForceImport imports ConfigFile at start even over a newer API edit.
	ForceImport bool
	// DataDir holds the SQLite store, logs and runtime files. Default ./data.
	DataDir string
	// Console receives the one-time first-start admin password. Default stdout.
	Console io.Writer
	// Getenv reads the environment (tests). Default os.Getenv.
	Getenv func(string) string
	// Force takes the store over from another node that holds it
	// (serve --force): for a node that is gone but whose lease has not
	// expired yet.
	Force bool
	// NodeName is which node of a cluster this is (serve --node-name).
	// Empty: ConfigFile's node.name, else the stored document's.
	NodeName string
}

// running is the configuration in force and the version it came from.
type running struct {
	cfg     *config.Config
	version store.ConfigVersion
}

// App is a running Portico node.
type App struct {
	opts    Options
	log     *logging.Logger
	st      store.Store
	spool   *store.Spool
	reg     *prometheus.Registry
	api     *api.Server
	web     *web.Server
	mgmt    *mgmtServer
	started time.Time
	svcs    []*service
	built   *built
	certs   *certs.Store
	bootCfg *config.Config // what the services were built from
	fds     *connlimit.Reserve

	pendingRestart atomic.Pointer[[]string] // fields changed that apply at restart
	fileImport     atomic.Pointer[FileImport]

	cur      atomic.Pointer[running]
	replace  sync.Mutex // serialises configuration changes
	storeErr atomic.Pointer[string]

	nodeID    string                 // this node's ID in the store's lease
	leaseLost atomic.Pointer[string] // set when another node took the store over

	// node is this node's name (Options.NodeName or the file's
	// node.name); empty: the stored document's node.name.
	node string
	// syncFailed is the last store version this node could not apply
	// (logged once).
	syncFailed atomic.Int64
}

// New reads the configuration, opens the store (migrating it), makes the
// first admin and the management certificate if missing, and binds the
// management listener. Errors say what to fix; the caller exits non-zero.
func New(ctx context.Context, opts Options) (*App, error) {
	if opts.DataDir == "" {
		opts.DataDir = "data"
	}
	if opts.Console == nil {
		opts.Console = os.Stdout
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	cfg := config.Default()
	var fileDoc []byte
	if opts.ConfigFile != "" {
		doc, err := os.ReadFile(opts.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if cfg, err = config.Parse(doc); err != nil {
			return nil, fmt.Errorf("%s: %w", opts.ConfigFile, err)
		}
		fileDoc = doc
	}
	a := &App{opts: opts, started: time.Now(), node: opts.NodeName}
	if a.node == "" && fileDoc != nil {
		a.node = cfg.Node.Name
	}
	var err error
	if a.log, err = newLogger(cfg, opts.DataDir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	// Without a file, PORTICO_STORE_DSN names the store: the node must not
	// start a new, empty SQLite store beside the cluster it belongs to.
	cfg.Store.Backend = open.Resolve(open.Config{Backend: cfg.Store.Backend}, fileDoc != nil, opts.Getenv).Backend
	a.st, err = openStore(ctx, cfg.Store, opts.DataDir, opts.Getenv, a.log.Logger)
	if err != nil {
		return nil, err
	}
	a.st = auditTee{Store: a.st, a: a}
	boot, err := a.chooseConfig(ctx, cfg, fileDoc)
	if err != nil {
		a.st.Close()
		a.st = nil
		return nil, err
	}
	// The nodes of a cluster share the store by design (each runs the one
	// document with its own part); a single node holds it alone.
	if len(boot.cfg.Nodes) == 0 {
		if err := a.acquireLease(ctx, boot.cfg.Node.Name); err != nil {
			a.st.Close()
			a.st = nil
			return nil, err
		}
	}
	if boot.cfg.Log != cfg.Log {
		// The store's version decides where logs go.
		l, err := newLogger(boot.cfg, opts.DataDir)
		if err != nil {
			return nil, err
		}
		a.log.Close()
		a.log = l
	}
	cfg = boot.cfg
	a.bootCfg = cfg
	if err := a.log.SetLevel(cfg.Log.Level); err != nil {
		return nil, err
	}
	if err := ensureAdmin(ctx, a.st, opts.Getenv("PORTICO_ADMIN_PASSWORD"), opts.Console, storeFlagsHint(cfg, opts)); err != nil {
		return nil, err
	}
	a.spool = store.NewSpool(a.st, logging.Component(a.log.Logger, "store"), 100000)
	a.spool.SetPolicy(store.HistoryPolicy{MaxAge: cfg.History.MaxAge.D(), MaxRows: cfg.History.MaxRows, FoldWindow: cfg.History.FoldWindow.D()})
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portico_store_up", Help: "1 when the store answers."}, func() float64 {
		if a.storeErr.Load() == nil {
			return 1
		}
		return 0
	}))
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portico_history_spool_pending", Help: "History records waiting for the store."}, func() float64 {
		return float64(a.spool.Pending())
	}))
	a.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_history_spool_dropped_total", Help: "History records dropped because the spool was full."}, func() float64 {
		return float64(a.spool.Dropped())
	}))
	if sl := a.log.Syslog(); sl != nil {
		a.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_syslog_sent_total", Help: "Records sent to the remote syslog collector."}, func() float64 { return float64(sl.Stats().Sent) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_syslog_dropped_total", Help: "Records dropped for the remote syslog collector (queue full or write failed twice)."}, func() float64 { return float64(sl.Stats().Dropped) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_syslog_connect_failures_total", Help: "Failed connections or writes to the remote syslog collector."}, func() float64 { return float64(sl.Stats().Failures) }))
	}
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portico_config_version", Help: "Active configuration version."}, func() float64 {
		if r := a.cur.Load(); r != nil {
			return float64(r.version.Version)
		}
		return 0
	}))
	// The management certificate is made (on the first start) before the
	// certificate store loads, so that it is also the access proxy's
	// default from the very first start.
	host, _, _ := net.SplitHostPort(cfg.Management.Listen)
	cert, err := managementCert(ctx, a.st, cfg.Management.CertFile, cfg.Management.KeyFile, cfg.Node.Name, net.ParseIP(host))
	if err != nil {
		return nil, err
	}
	a.certs = certs.NewStore(certs.Options{Persister: certPersister{a.st}, Logger: logging.Component(a.log.Logger, "certs")})
	if err := a.certs.Load(ctx); err != nil {
		return nil, fmt.Errorf("load certificates: %w", err)
	}
	// Outside listeners leave descriptors free so that management answers
	// while they are flooded (node.fd_reserve, read at start).
	a.fds = connlimit.NewReserve(cfg.Node.FDReserve)
	// Building the services is the validation a live load does; a document
	// they refuse is not stored, so the next start still finds a good one.
	if a.built, err = buildServices(cfg, a.serviceDeps()); err != nil {
		es, _ := config.AsErrors(asConfigErrors(err))
		doc := boot.doc
		if doc == nil {
			doc = boot.version.Document
		}
		return nil, config.Locate(doc, es)
	}
	a.svcs = a.built.list
	if err := checkVIPBinds(cfg, os.ReadFile); err != nil {
		return nil, err
	}
	if err := a.commitBoot(ctx, boot); err != nil {
		return nil, err
	}
	// Manual blocks outlive restarts: in force before any service serves.
	if err := a.built.guard.LoadBlocks(ctx); err != nil {
		return nil, err
	}
	a.api, err = api.New(api.Config{
		SessionTTL: cfg.Management.SessionTTL.D(), MaxLoginFailures: cfg.Management.MaxLoginFailures,
		Lockout: cfg.Management.Lockout.D(), LoginRatePerMinute: cfg.Management.LoginRatePerMinute,
	}, api.Deps{
		Store: a.st, Logger: a.log.Logger, Config: configService{a}, Backup: backupService{a},
		Gatherer: a.reg, Ready: a.ready, Status: a.status, Certs: a.certs,
		Routes: a.routes, Cluster: a.clusterService(),
		SIP: func() api.SIPService {
			if s := a.built.sip.Load(); s != nil {
				return s
			}
			return nil
		},
		TURN: func() api.TURNService {
			if a.built.turn == nil {
				return nil
			}
			return a.built.turn
		},
		H323: func() api.H323Service {
			if a.built.h323 == nil {
				return nil
			}
			return a.built.h323
		},
		Ladder: func() api.LadderService {
			if a.built.ladder == nil {
				return nil
			}
			return a.built.ladder
		},
		HA: func() api.HAService {
			if a.built.ha == nil {
				return nil
			}
			return a.built.ha
		},
		Tunnel: func() api.TunnelService {
			if a.built.tunnel == nil {
				return nil
			}
			return a.built.tunnel
		},
		Guard:     func() api.GuardService { return a.built.guard },
		OnLockout: a.loginLockout,
		Policy:    func() api.PolicyService { return policyService{a} },
	})
	if err != nil {
		return nil, err
	}
	if len(a.certs.List()) > 0 && a.certs.SetDefault(managementCertName) != nil {
		a.log.Warn("management certificate not in the certificate store", "component", "certs")
	}
	if a.web, err = newConsole(a.api, a.reg, a.log.Logger); err != nil {
		return nil, err
	}
	a.registerOpsMetrics(a.nodeName())
	a.mgmt = newMgmtServer(timeHTTP(a.web, a.reg), serverTLS(cert), logging.Component(a.log.Logger, "management"))
	a.mgmt.acl.admit = func(ip netip.Addr) bool { return a.built.mgmtACL.Allow(ip) && !a.built.guard.Blocked(ip) }
	a.mgmt.acl.set(cfg.Management.AllowedNetworks)
	a.reg.MustRegister(a.mgmt.acl.denied)
	if err := a.mgmt.bind(cfg.Management.Listen); err != nil {
		return nil, fmt.Errorf("management.listen: %w", err)
	}
	ok = true
	return a, nil
}

func newLogger(cfg *config.Config, dataDir string) (*logging.Logger, error) {
	lc := logging.Config{Level: cfg.Log.Level, Format: cfg.Log.Format, MaxSize: int64(cfg.Log.MaxSizeMB) << 20, MaxFiles: cfg.Log.MaxFiles,
		Syslog: cfg.Log.Syslog, Hostname: cfg.Node.Name}
	if cfg.Log.File != "" {
		lc.File = filepath.Join(dataDir, cfg.Log.File)
	}
	return logging.New(lc)
}

// openStore opens the configured backend. The DSN may come from the
// environment so the password stays out of the document; errors never
// include it.
func openStore(ctx context.Context, sc config.Store, dataDir string, getenv func(string) string, log *slog.Logger) (store.Store, error) {
	oc := open.Resolve(open.Config{Backend: sc.Backend, Path: filepath.Join(dataDir, sc.Path), DSN: sc.DSN}, true, getenv)
	st, err := open.Open(ctx, oc, logging.Component(log, "store"))
	if err != nil {
		return nil, fmt.Errorf("store (%s): %w", sc.Backend, err)
	}
	return st, nil
}

func sum(doc []byte) string {
	s := sha256.Sum256(doc)
	return hex.EncodeToString(s[:])
}

// bootChoice is the configuration a start runs and whether it must be
// stored first (once the services have accepted it).
type bootChoice struct {
	cfg     *config.Config
	doc     []byte // to store; nil: version is already stored
	author  string
	comment string
	expect  int64
	version store.ConfigVersion
	plan    *importPlan
}

// chooseConfig applies the import rule at start: the file's document, or
// the store's active version, or (empty store, no file) the defaults.
func (a *App) chooseConfig(ctx context.Context, fileCfg *config.Config, fileDoc []byte) (bootChoice, error) {
	active, err := a.st.ActiveConfig(ctx)
	hasActive := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return bootChoice{}, fmt.Errorf("read active config: %w", err)
	}
	useActive := func() (bootChoice, error) {
		cfg, err := config.Parse(active.Document)
		if err == nil {
			name := a.node
			if len(cfg.Nodes) == 0 && a.opts.NodeName == "" {
				// A single node's stored document names it: an API edit
				// of node.name runs from the next start.
				name = ""
			}
			cfg, err = cfg.ForNode(name)
		}
		if err != nil {
			hint := "import a good file with serve --config FILE --force-import"
			if fileDoc != nil {
				hint = "import " + a.opts.ConfigFile + " over it with --force-import"
			}
			return bootChoice{}, fmt.Errorf("active config version %d is not valid for this build (%s): %w", active.Version, hint, err)
		}
		return bootChoice{cfg: cfg, version: active}, nil
	}
	if fileDoc == nil {
		if hasActive {
			return useActive()
		}
		doc, err := config.Marshal(fileCfg)
		if err != nil {
			return bootChoice{}, err
		}
		return bootChoice{cfg: fileCfg, doc: doc, author: config.DefaultsAuthor, comment: "defaults at first start"}, nil
	}
	plan, err := planImport(ctx, a.st, a.opts.ConfigFile, a.node, sum(fileDoc), active, hasActive, a.opts.ForceImport)
	if err != nil {
		return bootChoice{}, err
	}
	if plan.doImport {
		if fileCfg, err = fileCfg.ForNode(a.node); err != nil {
			es, _ := config.AsErrors(asConfigErrors(err))
			return bootChoice{}, fmt.Errorf("%s: %w", a.opts.ConfigFile, config.Locate(fileDoc, es))
		}
		return bootChoice{cfg: fileCfg, doc: fileDoc, author: config.NodeFileAuthor(a.opts.ConfigFile, a.node),
			comment: "imported at start (" + plan.result.State + ")", expect: active.Version, plan: &plan}, nil
	}
	b, err := useActive()
	b.plan = &plan
	return b, err
}

// commitBoot stores the chosen document if it is new and makes it current.
func (a *App) commitBoot(ctx context.Context, b bootChoice) error {
	v := b.version
	if b.doc != nil {
		var err error
		if v, err = a.st.PutConfig(ctx, b.doc, b.author, b.comment, b.expect); err != nil {
			return fmt.Errorf("store config: %w", err)
		}
	}
	a.cur.Store(&running{cfg: b.cfg, version: v})
	if b.plan != nil {
		a.noteImport(b.plan.result, v)
	}
	return nil
}

// storeFlagsHint is what a CLI command needs to open this node's store, for
// messages that tell the operator which command to run.
func storeFlagsHint(cfg *config.Config, opts Options) string {
	if cfg.Store.Backend == "postgres" {
		if opts.ConfigFile != "" {
			return "--config " + opts.ConfigFile
		}
		return "(with PORTICO_STORE_DSN set)"
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		dir = opts.DataDir
	}
	return "--data " + dir
}

// noteImport logs what happened to the file and keeps it for the status API.
func (a *App) noteImport(r FileImport, running store.ConfigVersion) {
	a.fileImport.Store(&r)
	attrs := []any{"component", "config", "file", r.File, "result", r.State, "active_version", running.Version}
	switch r.State {
	case FileRefused:
		a.log.Warn("configuration file not imported: "+r.Detail, attrs...)
	case FileImported, FileForced:
		a.log.Info("configuration file imported as version "+fmt.Sprint(running.Version)+": "+r.Detail, attrs...)
		a.st.AppendAudit(context.Background(), store.AuditEntry{Time: time.Now().UTC(), User: a.cur.Load().cfg.Node.Name, Source: "file",
			Action: "config.import", Target: r.File, Detail: fmt.Sprintf("version %d (%s)", running.Version, r.State)})
	default:
		a.log.Info("configuration file not imported: "+r.Detail, attrs...)
	}
}

// ensureAdmin creates the admin account when no enabled admin exists, with
// the given password or a random one printed once on the console. storeHint
// names the flags that reach this store, so the reset command can be pasted.
func ensureAdmin(ctx context.Context, st store.Store, password string, console io.Writer, storeHint string) error {
	users, err := st.Users(ctx)
	if err != nil {
		return fmt.Errorf("read users: %w", err)
	}
	for _, u := range users {
		if u.Role == store.RoleAdmin && !u.Disabled {
			return nil
		}
	}
	generated := password == ""
	if generated {
		var b [15]byte
		rand.Read(b[:])
		password = base64.RawURLEncoding.EncodeToString(b[:])
	} else if err := api.ValidatePassword(password); err != nil {
		return fmt.Errorf("PORTICO_ADMIN_PASSWORD: %w", err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	name := "admin"
	for _, u := range users {
		if u.Name == name { // a disabled or demoted "admin": use a fresh name
			name = "admin-" + now.Format("20060102150405")
		}
	}
	if err := st.CreateUser(ctx, store.User{Name: name, PasswordHash: hash, Role: store.RoleAdmin, CreatedAt: now, UpdatedAt: now}); err != nil {
		return fmt.Errorf("create admin: %w", err)
	}
	if generated {
		fmt.Fprintf(console, "\nPortico first start: created user %q with password %s\nIt is shown only this once; change it with `portico user passwd %s %s`.\n\n", name, password, name, storeHint)
	} else {
		fmt.Fprintf(console, "Portico first start: created user %q with the password from PORTICO_ADMIN_PASSWORD\n", name)
	}
	return nil
}

func (a *App) serviceDeps() serviceDeps {
	return serviceDeps{log: a.log.Logger, reg: a.reg, st: a.st, certs: a.certs, env: a.opts.Getenv, hist: a.spool, events: a.recordEvent, fds: a.fds, node: a.nodeName(), dataDir: a.opts.DataDir, snmp: nodeState{a}}
}

// ManagementURL is where the API listens.
func (a *App) ManagementURL() string { return "https://" + a.mgmt.addr() }

// Logger is the app's logger.
func (a *App) Logger() *slog.Logger { return a.log.Logger }

// Store is the app's store.
func (a *App) Store() store.Store { return a.st }

// Run serves until ctx ends, then drains within node.drain_timeout.
func (a *App) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.mgmt.run(gctx, a.drain) })
	g.Go(func() error { return a.web.Run(gctx) })
	g.Go(func() error { return a.spool.Run(gctx) })
	// The guard blocks without running; Run sweeps ended blocks and feeds
	// the kernel set. It is no service of readiness: nothing waits on it.
	g.Go(func() error { return a.built.guard.Run(gctx) })
	g.Go(func() error { a.watchStore(gctx); return nil })
	for _, s := range a.svcs {
		g.Go(func() error {
			s.running.Store(true)
			err := s.run(gctx)
			s.running.Store(false)
			if err != nil {
				msg := err.Error()
				s.err.Store(&msg)
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
	}
	a.log.Info("portico serving", "component", "app", "version", Version, "node", a.cur.Load().cfg.Node.Name,
		"management", a.ManagementURL(), "store", a.st.Backend(), "config_version", a.cur.Load().version.Version)
	err := g.Wait()
	a.log.Info("portico stopped", "component", "app")
	return err
}

// Ready reports whether every readiness check (GET /readyz) passes.
func (a *App) Ready(ctx context.Context) bool {
	for _, c := range a.ready(ctx) {
		if !c.OK {
			return false
		}
	}
	return true
}

func (a *App) drain() time.Duration { return a.cur.Load().cfg.Node.DrainTimeout.D() }

// watchStore pings the store so readiness reflects its loss and recovery.
func (a *App) watchStore(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := a.st.Ping(pctx)
		cancel()
		if err == nil {
			a.renewLease(ctx)
			a.follow(ctx)
		}
		prev := a.storeErr.Load()
		if err != nil && ctx.Err() == nil {
			msg := err.Error()
			a.storeErr.Store(&msg)
			if prev == nil {
				a.log.Error("store unreachable; retrying", "component", "store", "err", err)
			}
		} else if err == nil && prev != nil {
			a.storeErr.Store(nil)
			a.log.Info("store reachable again", "component", "store")
			a.spool.AddEvent(store.Event{Time: time.Now().UTC(), Severity: "warning", Component: "store", Message: "store was unreachable: " + *prev})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *App) ready(ctx context.Context) []api.Check {
	c := api.Check{Name: "store", OK: true}
	if err := a.st.Ping(ctx); err != nil {
		c.OK, c.Error = false, err.Error()
	}
	checks := []api.Check{c}
	if lost := a.leaseLost.Load(); lost != nil {
		checks = append(checks, api.Check{Name: "store-lease", OK: false, Error: *lost})
	}
	// History waiting for the store is shown, never failed: a flood of
	// rejected requests fills the spool while the store answers, and a
	// node pulled from its load balancer for that would serve no one.
	sp := api.Check{Name: "history-spool", OK: true}
	if n := a.spool.Pending(); n > 0 {
		sp.Info = fmt.Sprintf("%d history records waiting for the store", n)
	}
	checks = append(checks, sp)
	for _, s := range a.svcs {
		c := api.Check{Name: s.name, OK: s.running.Load()}
		if !c.OK {
			c.Error = "not running"
			if e := s.err.Load(); e != nil {
				c.Error = *e
			}
		}
		checks = append(checks, c)
	}
	if ss := a.built.sip.Load(); ss != nil {
		checks = append(checks, sipListenerChecks(ss.ListenerStatus())...)
	}
	if ts := a.built.turn; ts != nil {
		checks = append(checks, turnListenerChecks(ts.ListenerStatus())...)
	}
	if t := a.built.tunnel; t != nil {
		// A stale pin needs an administrator; the tunnel merely being
		// down does not fail readiness (it comes back by itself).
		if p := t.Stats().Problem; p != "" {
			checks = append(checks, api.Check{Name: "tunnel-enrollment", OK: false, Error: p})
		}
	}
	return checks
}

// turnListenerChecks are one readiness check per TURN TCP or TLS listener,
// as sipListenerChecks.
func turnListenerChecks(ls []turn.ListenerStatus) []api.Check {
	out := make([]api.Check, 0, len(ls))
	for _, l := range ls {
		out = append(out, api.Check{Name: "turn " + l.Transport + " " + l.Address, OK: l.Err == "", Error: l.Err})
	}
	return out
}

// sipListenerChecks are one readiness check per SIP listener: a listener
// whose serving ended, or whose accepts are failing, makes the node not
// ready even though the SIP service as a whole still runs.
func sipListenerChecks(ls []sipedge.ListenerStatus) []api.Check {
	out := make([]api.Check, 0, len(ls))
	for _, l := range ls {
		out = append(out, api.Check{Name: "sip " + l.Interface + " " + l.Transport + " " + l.Address, OK: l.Err == "", Error: l.Err})
	}
	return out
}

func (a *App) status(ctx context.Context) map[string]any {
	r := a.cur.Load()
	return map[string]any{
		"version": Version, "node": a.bootCfg.Node.Name, "started_at": a.started.UTC(),
		"uptime_seconds": int64(time.Since(a.started).Seconds()), "store": a.st.Backend(),
		"config_version": r.version.Version, "management": a.ManagementURL(),
		"config":          a.configStatus(r.version),
		"pending_restart": a.pending(),
	}
}

// ConfigStatus says which version runs and where it came from.
type ConfigStatus struct {
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	Comment   string    `json:"comment"`
	config.Origin
	// FileImport is what the last start or SIGHUP did with the file
	// (absent without --config).
	FileImport *FileImport `json:"file_import,omitempty"`
}

func (a *App) configStatus(v store.ConfigVersion) ConfigStatus {
	return ConfigStatus{Version: v.Version, CreatedAt: v.CreatedAt.UTC(), Comment: v.Comment, Origin: config.OriginOf(v.Author), FileImport: a.fileImport.Load()}
}

func (a *App) pending() []string {
	if p := a.pendingRestart.Load(); p != nil {
		return *p
	}
	return []string{}
}

// Reimport is SIGHUP: it first takes up the store's active version if it is
// newer than the running one (written by portico config import, or by
// another node sharing the store), then reads the configuration file again
// and imports it under the same rule as a start (never forced). A refusal
// by the rule returns an error wrapping ErrImportRefused, already logged.
func (a *App) Reimport(ctx context.Context) error {
	active, err := a.st.ActiveConfig(ctx)
	if err != nil {
		return fmt.Errorf("read active config: %w", err)
	}
	if active.Version != a.cur.Load().version.Version {
		changed, err := a.apply(ctx, nil, &active, "", "", -1)
		if err != nil {
			return fmt.Errorf("store's active version %d: %w", active.Version, err)
		}
		o := config.OriginOf(active.Author)
		a.log.Info("applied the store's active configuration", "component", "config", "version", active.Version, "source", o.Source, "author", o.Author, "changed", changed)
	}
	if a.opts.ConfigFile == "" {
		return nil
	}
	doc, err := os.ReadFile(a.opts.ConfigFile)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	plan, err := planImport(ctx, a.st, a.opts.ConfigFile, a.node, sum(doc), active, true, false)
	if err != nil {
		return err
	}
	if !plan.doImport {
		a.noteImport(plan.result, active)
		if plan.result.State == FileRefused {
			return fmt.Errorf("%w: %s", ErrImportRefused, plan.result.Detail)
		}
		return nil
	}
	v, changed, err := a.Replace(ctx, doc, config.NodeFileAuthor(a.opts.ConfigFile, a.node), "re-imported on SIGHUP", active.Version)
	if err != nil {
		return err
	}
	a.noteImport(plan.result, v)
	a.log.Info("configuration re-imported", "component", "config", "version", v.Version, "changed", changed)
	return nil
}

// Validate checks doc as Replace would (see the package function Validate)
// without storing or applying it.
func (a *App) Validate(ctx context.Context, doc []byte) error {
	cfg, err := validate(doc, a.runDeps())
	if err != nil {
		return err
	}
	return a.checkLive(cfg)
}

// checkLive refuses what a running node cannot take at all.
func (a *App) checkLive(cfg *config.Config) error {
	if cfg.Store != a.cur.Load().cfg.Store {
		return config.Errors{{Path: "store", Reason: "the store cannot change while Portico runs; move data with backup and restore, then restart"}}
	}
	return nil
}

// Replace validates doc, prepares it, stores it as a new version if the
// active version is still expect (-1: any), and swaps it in. On any error
// the running configuration is untouched.
func (a *App) Replace(ctx context.Context, doc []byte, author, comment string, expect int64) (store.ConfigVersion, []string, error) {
	var v store.ConfigVersion
	changed, err := a.apply(ctx, doc, &v, author, comment, expect)
	return v, changed, err
}

// apply validates and prepares a document, then swaps it in. With doc nil
// it applies the stored version *v; otherwise it stores doc first and sets
// *v to the new version.
func (a *App) apply(ctx context.Context, doc []byte, v *store.ConfigVersion, author, comment string, expect int64) ([]string, error) {
	a.replace.Lock()
	defer a.replace.Unlock()
	stored := doc == nil
	if stored {
		doc = v.Document
	}
	// The same build a start does, on a throwaway set that is closed again.
	cfg, err := validate(doc, a.runDeps())
	if err != nil {
		return nil, err
	}
	if err := a.checkLive(cfg); err != nil {
		return nil, err
	}
	old := a.cur.Load()
	changed := config.Changed(old.cfg, cfg)
	var pending *preparedListener
	if cfg.Management.Listen != old.cfg.Management.Listen {
		if pending, err = a.mgmt.prepare(cfg.Management.Listen); err != nil {
			return nil, config.Errors{{Path: "management.listen", Reason: err.Error()}}
		}
	}
	if !stored {
		if *v, err = a.st.PutConfig(ctx, doc, author, comment, expect); err != nil {
			pending.abandon()
			return nil, err
		}
	}
	a.cur.Store(&running{cfg: cfg, version: *v})
	a.log.SetLevel(cfg.Log.Level)
	var restart []string
	for _, r := range a.built.reloads {
		if !sectionEnabled(cfg, r.section) {
			continue // stays running until restart: "<section>.enabled" is pending
		}
		rs, err := r.apply(cfg)
		if err != nil {
			// Not expected: validate above built the section. A route naming
			// a listener not yet bound is one way.
			a.log.Warn("section keeps its running configuration until restart", "component", "config", "section", r.section, "err", err)
			rs = append(rs, r.section)
		}
		restart = append(restart, rs...)
	}
	if err := a.built.setACLs(cfg); err != nil {
		a.log.Error("acl reload", "component", "config", "err", err)
	}
	a.notePending(cfg, restart)
	a.mgmt.acl.set(cfg.Management.AllowedNetworks)
	if pending != nil {
		a.mgmt.commit(pending)
	}
	a.log.Info("configuration applied", "component", "config", "version", v.Version, "author", v.Author, "changed", changed, "pending_restart", a.pending())
	return changed, nil
}

// liveFields are applied by apply itself (log level, management listener
// and ACL) or read where they are used (node).
var liveFields = map[string]bool{"log.level": true, "management.listen": true, "management.allowed_networks": true}

// notePending records every field that differs from what the node started
// with and that a restart applies: each accepted change is either applied
// live or named here. svcRestart are the fields the running services'
// Reload could not take live.
func (a *App) notePending(cfg *config.Config, svcRestart []string) {
	boot := a.bootCfg
	reloaded := map[string]bool{} // sections a running service reloads
	for _, r := range a.built.reloads {
		reloaded[r.section] = sectionEnabled(cfg, r.section)
	}
	p := []string{}
	for _, f := range config.Diff(boot, cfg) {
		sec, _, _ := strings.Cut(f, ".")
		sec, _, _ = strings.Cut(sec, "[")
		switch {
		case liveFields[f] || (sec == "node" && f != "node.fd_reserve" && f != "node.name"):
			// The descriptor reserve is taken at start; the name is in the
			// store lease, the management certificate and the logs.
		case f == "guard.kernel":
			p = append(p, f) // the kernel set is set up at start
		case sec == "policy": // setACLs and the SIP edge's Reload (rules) apply it
		case reloaded[sec]: // its Reload reports what it could not apply
		case !sectionEnabled(boot, sec) && !sectionEnabled(cfg, sec) && f != sec+".enabled":
			// off before and after: nothing runs to apply it to
		default:
			p = append(p, f)
		}
	}
	p = append(p, svcRestart...)
	slices.Sort(p)
	p = slices.Compact(p)
	a.pendingRestart.Store(&p)
}

// sectionEnabled reports a service section's enabled field; sections that
// are not services count as enabled.
func sectionEnabled(cfg *config.Config, sec string) bool {
	switch sec {
	case "ha":
		return cfg.HA.Enabled
	case "sip":
		return cfg.SIP.Enabled
	case "turn":
		return cfg.TURN.Enabled
	case "access_proxy":
		return cfg.AccessProxy.Enabled
	case "h323":
		return cfg.H323.Enabled
	case "media":
		return cfg.Media.Enabled
	case "tunnel":
		return cfg.Tunnel.Enabled
	case "snmp":
		return cfg.SNMP.Enabled
	}
	return true
}

// Close releases everything New opened. Safe to call twice.
func (a *App) Close() {
	if a.mgmt != nil {
		a.mgmt.close()
	}
	if a.built != nil {
		a.built.close()
	}
	if a.st != nil {
		if a.nodeID != "" && a.leaseLost.Load() == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := a.st.ReleaseLease(ctx, a.nodeID); err != nil {
				a.log.Warn("store lease not released; it expires by itself", "component", "store", "err", err)
			}
			cancel()
		}
		a.st.Close()
		a.st = nil
	}
	if a.log != nil {
		a.log.Close()
	}
}

type configService struct{ a *App }

func (c configService) Active(ctx context.Context) (store.ConfigVersion, error) {
	// The store's active version is the one a change must name: another
	// node of the cluster may have written it since this node last looked.
	c.a.follow(ctx)
	v := c.a.cur.Load().version
	if v.Document == nil {
		return c.a.st.ConfigVersion(ctx, v.Version)
	}
	return v, nil
}

func (c configService) Validate(ctx context.Context, doc []byte) error {
	return c.a.Validate(ctx, doc)
}

func (c configService) Replace(ctx context.Context, doc []byte, author, comment string, expect int64) (store.ConfigVersion, []string, error) {
	return c.a.Replace(ctx, doc, author, comment, expect)
}

type backupService struct{ a *App }

func (b backupService) Backup(ctx context.Context, w io.Writer) error {
	_, err := backup.Write(ctx, b.a.st, w, Version)
	return err
}

func (b backupService) Restore(ctx context.Context, r io.Reader) error {
	snap, _, err := backup.Read(r)
	if err != nil {
		return err
	}
	b.a.replace.Lock()
	defer b.a.replace.Unlock()
	if err := b.a.st.Restore(ctx, snap); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// The restored active version is what the API now reads and what the
	// next change must name (its ETag); it runs from the next start.
	if v, err := b.a.st.ActiveConfig(ctx); err == nil {
		run := &running{cfg: b.a.cur.Load().cfg, version: v}
		if cfg, err := config.Parse(v.Document); err == nil {
			run.cfg = cfg
		}
		b.a.cur.Store(run)
		b.a.notePending(run.cfg, []string{"restore"})
	}
	b.a.log.Warn("store restored from a backup archive; restart to run its configuration", "component", "app")
	return nil
}

// nodeName is this node's name: chosen at start, else the running
// document's node.name.
func (a *App) nodeName() string {
	if a.node != "" {
		return a.node
	}
	if r := a.cur.Load(); r != nil {
		return r.cfg.Node.Name
	}
	return ""
}

// follow applies the store's active version when it is newer than the
// running one: written by another node of the cluster, or by `portico
// config import`. A version this node cannot run is logged once and the
// running configuration stays.
func (a *App) follow(ctx context.Context) {
	active, err := a.st.ActiveConfig(ctx)
	if err != nil || active.Version <= a.cur.Load().version.Version || active.Version == a.syncFailed.Load() {
		return
	}
	changed, err := a.apply(ctx, nil, &active, "", "", -1)
	if err != nil {
		a.syncFailed.Store(active.Version)
		a.log.Error("the store's active configuration does not run on this node; the running one stays", "component", "config",
			"version", active.Version, "running_version", a.cur.Load().version.Version, "err", err)
		return
	}
	o := config.OriginOf(active.Author)
	a.log.Info("applied the store's active configuration", "component", "config", "version", active.Version, "source", o.Source, "author", o.Author, "changed", changed)
}
