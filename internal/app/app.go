// Package app builds Portico's services from the configuration, runs them
// under one errgroup, and applies configuration changes live.
//
// The configuration lives in the store as numbered versions. A file given at
// start is imported when it differs from the active version; the API and
// SIGHUP replace it later. A change is parsed, validated and prepared (new
// listeners bound) before it is stored and swapped in, so a refused change
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
	"github.com/portico-edge/portico/internal/logging"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/open"
)

// Version is set at build time (-ldflags -X).
var Version = "dev"

// Options are what the command line gives.
type Options struct {
	// ConfigFile is imported at start and on SIGHUP; empty uses the store's
	// active version (or the defaults on a new store).
	ConfigFile string
	// DataDir holds the SQLite store, logs and runtime files. Default ./data.
	DataDir string
	// Console receives the one-time first-start admin password. Default stdout.
	Console io.Writer
	// Getenv reads the environment (tests). Default os.Getenv.
	Getenv func(string) string
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
	mgmt    *mgmtServer
	started time.Time
	svcs    []*service
	built   *built
	certs   *certs.Store
	bootCfg *config.Config // what the services were built from

	pendingRestart atomic.Pointer[[]string] // sections changed that apply at restart

	cur      atomic.Pointer[running]
	replace  sync.Mutex // serialises configuration changes
	storeErr atomic.Pointer[string]
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
	a := &App{opts: opts, started: time.Now()}
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
	a.st, err = openStore(ctx, cfg.Store, opts.DataDir, opts.Getenv, a.log.Logger)
	if err != nil {
		return nil, err
	}
	if err := a.loadConfig(ctx, cfg, fileDoc); err != nil {
		return nil, err
	}
	if stored := a.cur.Load().cfg; stored.Log != cfg.Log {
		// Started without a file: the store's version decides where logs go.
		l, err := newLogger(stored, opts.DataDir)
		if err != nil {
			return nil, err
		}
		a.log.Close()
		a.log = l
	}
	cfg = a.cur.Load().cfg
	a.bootCfg = cfg
	if err := a.log.SetLevel(cfg.Log.Level); err != nil {
		return nil, err
	}
	if err := ensureAdmin(ctx, a.st, opts.Getenv("PORTICO_ADMIN_PASSWORD"), opts.Console); err != nil {
		return nil, err
	}
	a.spool = store.NewSpool(a.st, logging.Component(a.log.Logger, "store"), 100000)
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portico_store_up", Help: "1 when the store answers."}, func() float64 {
		if a.storeErr.Load() == nil {
			return 1
		}
		return 0
	}))
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portico_config_version", Help: "Active configuration version."}, func() float64 {
		return float64(a.cur.Load().version.Version)
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
	if a.built, err = buildServices(cfg, a.serviceDeps()); err != nil {
		return nil, err
	}
	a.svcs = a.built.list
	a.api, err = api.New(api.Config{
		SessionTTL: cfg.Management.SessionTTL.D(), MaxLoginFailures: cfg.Management.MaxLoginFailures,
		Lockout: cfg.Management.Lockout.D(), LoginRatePerMinute: cfg.Management.LoginRatePerMinute,
	}, api.Deps{
		Store: a.st, Logger: a.log.Logger, Config: configService{a}, Backup: backupService{a},
		Gatherer: a.reg, Ready: a.ready, Status: a.status, Certs: a.certs,
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
		Guard:  func() api.GuardService { return a.built.guard },
		Policy: func() api.PolicyService { return policyService{a} },
	})
	if err != nil {
		return nil, err
	}
	if len(a.certs.List()) > 0 && a.certs.SetDefault(managementCertName) != nil {
		a.log.Warn("management certificate not in the certificate store", "component", "certs")
	}
	a.mgmt = newMgmtServer(a.api, serverTLS(cert), logging.Component(a.log.Logger, "management"))
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
	lc := logging.Config{Level: cfg.Log.Level, Format: cfg.Log.Format, MaxSize: int64(cfg.Log.MaxSizeMB) << 20, MaxFiles: cfg.Log.MaxFiles}
	if cfg.Log.File != "" {
		lc.File = filepath.Join(dataDir, cfg.Log.File)
	}
	return logging.New(lc)
}

// openStore opens the configured backend. The DSN may come from the
// environment so the password stays out of the document; errors never
// include it.
func openStore(ctx context.Context, sc config.Store, dataDir string, getenv func(string) string, log *slog.Logger) (store.Store, error) {
	oc := open.Config{Backend: sc.Backend, Path: filepath.Join(dataDir, sc.Path), DSN: sc.DSN}
	if oc.DSN == "" {
		oc.DSN = getenv("PORTICO_STORE_DSN")
	}
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

// loadConfig settles the running configuration: the file's document when it
// differs from the active version (imported as a new version), else the
// active version, else the defaults (stored as version 1).
func (a *App) loadConfig(ctx context.Context, fileCfg *config.Config, fileDoc []byte) error {
	active, err := a.st.ActiveConfig(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read active config: %w", err)
	}
	expect := active.Version
	switch {
	case fileDoc != nil && (errors.Is(err, store.ErrNotFound) || active.SHA256 != sum(fileDoc)):
		v, err := a.st.PutConfig(ctx, fileDoc, "file:"+a.opts.ConfigFile, "imported at start", expect)
		if err != nil {
			return fmt.Errorf("import config: %w", err)
		}
		a.log.Info("imported configuration file", "component", "config", "file", a.opts.ConfigFile, "version", v.Version)
		a.cur.Store(&running{cfg: fileCfg, version: v})
	case fileDoc != nil:
		a.cur.Store(&running{cfg: fileCfg, version: active})
	case err == nil:
		cfg, perr := config.Parse(active.Document)
		if perr != nil {
			return fmt.Errorf("active config version %d: %w", active.Version, perr)
		}
		a.cur.Store(&running{cfg: cfg, version: active})
	default:
		doc, merr := config.Marshal(fileCfg)
		if merr != nil {
			return merr
		}
		v, err := a.st.PutConfig(ctx, doc, "portico", "defaults at first start", 0)
		if err != nil {
			return fmt.Errorf("store default config: %w", err)
		}
		a.cur.Store(&running{cfg: fileCfg, version: v})
	}
	return nil
}

// ensureAdmin creates the admin account when no enabled admin exists, with
// the given password or a random one printed once on the console.
func ensureAdmin(ctx context.Context, st store.Store, password string, console io.Writer) error {
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
		fmt.Fprintf(console, "\nPortico first start: created user %q with password %s\nIt is shown only this once; change it with `portico user passwd %s`.\n\n", name, password, name)
	} else {
		fmt.Fprintf(console, "Portico first start: created user %q with the password from PORTICO_ADMIN_PASSWORD\n", name)
	}
	return nil
}

func (a *App) serviceDeps() serviceDeps {
	return serviceDeps{log: a.log.Logger, reg: a.reg, st: a.st, certs: a.certs, env: a.opts.Getenv, hist: a.spool, events: a.spool.AddEvent}
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
	g.Go(func() error { return a.spool.Run(gctx) })
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

func (a *App) drain() time.Duration { return a.cur.Load().cfg.Node.DrainTimeout.D() }

// watchStore pings the store so readiness reflects its loss and recovery.
func (a *App) watchStore(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := a.st.Ping(pctx)
		cancel()
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
	sp := api.Check{Name: "history-spool", OK: a.spool.Healthy()}
	if !sp.OK {
		sp.Error = fmt.Sprintf("%d history records waiting for the store", a.spool.Pending())
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
	return checks
}

func (a *App) status(ctx context.Context) map[string]any {
	r := a.cur.Load()
	return map[string]any{
		"version": Version, "node": r.cfg.Node.Name, "started_at": a.started.UTC(),
		"uptime_seconds": int64(time.Since(a.started).Seconds()), "store": a.st.Backend(),
		"config_version": r.version.Version, "management": a.ManagementURL(),
		"pending_restart": a.pending(),
	}
}

func (a *App) pending() []string {
	if p := a.pendingRestart.Load(); p != nil {
		return *p
	}
	return []string{}
}

// Reimport reads the configuration file again (SIGHUP) and applies it if it
// differs from the active version.
func (a *App) Reimport(ctx context.Context) error {
	if a.opts.ConfigFile == "" {
		return errors.New("no configuration file to re-import (started without --config)")
	}
	doc, err := os.ReadFile(a.opts.ConfigFile)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if sum(doc) == a.cur.Load().version.SHA256 {
		return nil
	}
	_, changed, err := a.Replace(ctx, doc, "file:"+a.opts.ConfigFile, "re-imported on SIGHUP", -1)
	if err != nil {
		return err
	}
	a.log.Info("configuration re-imported", "component", "config", "changed", changed)
	return nil
}

// Replace validates doc, prepares it, stores it as a new version if the
// active version is still expect (-1: any), and swaps it in. On any error
// the running configuration is untouched.
func (a *App) Replace(ctx context.Context, doc []byte, author, comment string, expect int64) (store.ConfigVersion, []string, error) {
	a.replace.Lock()
	defer a.replace.Unlock()
	cfg, err := config.Parse(doc)
	if err != nil {
		return store.ConfigVersion{}, nil, err
	}
	old := a.cur.Load()
	changed := config.Changed(old.cfg, cfg)
	var es config.Errors
	if cfg.Store != old.cfg.Store {
		es = append(es, config.FieldError{Path: "store", Reason: "the store cannot change while Portico runs; move data with backup and restore, then restart"})
	}
	if len(es) > 0 {
		return store.ConfigVersion{}, nil, es
	}
	// Services validate their own sections; building them does no I/O.
	// The built set is thrown away: sections other than access_proxy apply at restart.
	if _, err := buildServices(cfg, a.serviceDeps().withRegisterer(prometheus.NewRegistry())); err != nil {
		if es, ok := config.AsErrors(err); ok {
			return store.ConfigVersion{}, nil, es
		}
		return store.ConfigVersion{}, nil, config.Errors{{Reason: err.Error()}}
	}
	var pending *preparedListener
	if cfg.Management.Listen != old.cfg.Management.Listen {
		if pending, err = a.mgmt.prepare(cfg.Management.Listen); err != nil {
			return store.ConfigVersion{}, nil, config.Errors{{Path: "management.listen", Reason: err.Error()}}
		}
	}
	v, err := a.st.PutConfig(ctx, doc, author, comment, expect)
	if err != nil {
		pending.abandon()
		return store.ConfigVersion{}, nil, err
	}
	a.cur.Store(&running{cfg: cfg, version: v})
	a.log.SetLevel(cfg.Log.Level)
	var sipRestart []string
	if ss := a.built.sip.Load(); ss != nil && cfg.SIP.Enabled {
		if sipRestart, err = ss.Reload(sipConfig(cfg)); err != nil {
			// Not expected: buildServices above validated the section.
			a.log.Error("sip reload", "component", "config", "err", err)
			sipRestart = []string{"sip"}
		}
	}
	if ts := a.built.turn; ts != nil && cfg.TURN.Enabled {
		if err := ts.Reload(turnConfig(cfg, a.opts.Getenv)); err != nil {
			a.log.Error("turn reload", "component", "config", "err", err)
		}
	}
	if err := a.built.guard.Reload(guardConfig(cfg)); err != nil {
		a.log.Error("guard reload", "component", "config", "err", err)
	}
	if err := a.built.setACLs(cfg); err != nil {
		a.log.Error("acl reload", "component", "config", "err", err)
	}
	a.notePending(cfg, sipRestart)
	a.mgmt.acl.set(cfg.Management.AllowedNetworks)
	if pending != nil {
		a.mgmt.commit(pending)
	}
	if ap := a.built.accessProxy; ap != nil && cfg.AccessProxy.Enabled {
		if err := ap.Reload(cfg.AccessProxy.Config); err != nil {
			a.log.Error("access proxy reload", "component", "config", "err", err)
		}
	}
	a.log.Info("configuration applied", "component", "config", "version", v.Version, "author", author, "changed", changed)
	return v, changed, nil
}

// notePending records the sections that differ from what the node started
// with and apply only at restart (media ranges, log destination), and the
// sip fields the running SIP edge could not take live (sipRestart, from
// its Reload).
func (a *App) notePending(cfg *config.Config, sipRestart []string) {
	var p []string
	if a.bootCfg.AccessProxy.Enabled != cfg.AccessProxy.Enabled {
		p = append(p, "access_proxy")
	}
	for _, sec := range config.Changed(a.bootCfg, cfg) {
		if restartSections[sec] {
			p = append(p, sec)
		}
	}
	if a.built.turn == nil || !cfg.TURN.Enabled {
		if a.bootCfg.TURN.Enabled != cfg.TURN.Enabled {
			p = append(p, "turn")
		}
	} else {
		p = append(p, turnRestart(a.bootCfg, cfg)...)
	}
	switch boot := a.bootCfg.SIP; {
	case boot.Enabled != cfg.SIP.Enabled || (a.built.sip.Load() == nil && cfg.SIP.Enabled):
		p = append(p, "sip")
	case boot.Certificate != cfg.SIP.Certificate:
		p = append(p, "sip.certificate")
	}
	p = append(p, sipRestart...)
	if a.bootCfg.Guard.Kernel != cfg.Guard.Kernel {
		p = append(p, "guard.kernel")
	}
	if a.bootCfg.Log.File != cfg.Log.File || a.bootCfg.Log.Format != cfg.Log.Format {
		p = append(p, "log")
	}
	a.pendingRestart.Store(&p)
}

// Close releases everything New opened. Safe to call twice.
func (a *App) Close() {
	if a.mgmt != nil {
		a.mgmt.close()
	}
	if a.st != nil {
		a.st.Close()
		a.st = nil
	}
	if a.log != nil {
		a.log.Close()
	}
}

type configService struct{ a *App }

func (c configService) Active(ctx context.Context) (store.ConfigVersion, error) {
	v := c.a.cur.Load().version
	if v.Document == nil {
		return c.a.st.ConfigVersion(ctx, v.Version)
	}
	return v, nil
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
	b.a.log.Warn("store restored from a backup archive; restart to run its configuration", "component", "app")
	return nil
}
