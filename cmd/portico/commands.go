package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/app"
	"github.com/portico-edge/portico/internal/backup"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/open"
)

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "portico",
		Short:         "Portico: session border controller and firewall-traversal edge for video conferencing",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), configCmd(), userCmd(), turnCmd(), tunnelCmd(), haCmd(), backupCmd(), restoreCmd(), versionCmd(), statusCmd())
	return root
}

// storeFlags locate the store for commands that work on it directly.
type storeFlags struct{ config, data string }

func (f *storeFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.config, "config", "", "configuration file whose store section names the store (default: SQLite in --data)")
	c.Flags().StringVar(&f.data, "data", "data", "data directory")
}

func (f *storeFlags) open(ctx context.Context) (store.Store, error) {
	cfg := config.Default()
	if f.config != "" {
		doc, err := os.ReadFile(f.config)
		if err != nil {
			return nil, err
		}
		if cfg, err = config.Parse(doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f.config, err)
		}
	}
	oc := f.resolve(cfg)
	if oc.Backend == "sqlite" {
		if _, err := os.Stat(oc.Path); err != nil {
			return nil, fmt.Errorf("no store at %s (give --data, --config, or %s for PostgreSQL): %w", oc.Path, open.EnvDSN, err)
		}
	}
	return open.Open(ctx, oc, nil)
}

// resolve is where cfg's store is, by the daemon's rule (open.Resolve).
func (f *storeFlags) resolve(cfg *config.Config) open.Config {
	return open.Resolve(open.Config{Backend: cfg.Store.Backend, Path: filepath.Join(f.data, cfg.Store.Path), DSN: cfg.Store.DSN}, f.config != "", os.Getenv)
}

func serveCmd() *cobra.Command {
	var cfgFile, data string
	var force, forceImport bool
	var nodeName string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run Portico",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			tuneGC(os.Getenv)
			notify, err := newNotifier(os.Getenv)
			if err != nil {
				return err
			}
			def := systemDefaults()
			cfgFile = def.configFile(cfgFile, cmd.Flags().Changed("config"))
			data = def.dataDirectory(data, cmd.Flags().Changed("data"))
			if err := checkDataDir(data); err != nil {
				return err
			}
			a, err := app.New(ctx, app.Options{ConfigFile: cfgFile, ForceImport: forceImport, DataDir: data, Console: cmd.OutOrStdout(), Force: force, NodeName: nodeName})
			if err != nil {
				return explainPrivilege(err)
			}
			defer a.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "Portico %s serving; management at %s\n", app.Version, a.ManagementURL())
			a.Logger().Info("files", "component", "app", "config", cfgFile, "data", data)
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					notify.reloading()
					if err := a.Reimport(ctx); err != nil && !errors.Is(err, app.ErrImportRefused) { // a refusal is logged as a warning
						a.Logger().Error("SIGHUP: configuration refused; the running configuration stays", "component", "config", "err", err)
					}
					notify.send("READY=1")
				}
			}()
			return explainPrivilege(runNotified(ctx, a, notify))
		},
	}
	c.Flags().StringVar(&cfgFile, "config", "", "configuration file (YAML), imported on the first start or when it changed with no newer API edit (docs/config.md); default "+installedConfig+" when it exists")
	c.Flags().BoolVar(&forceImport, "force-import", false, "import --config even over a newer API edit")
	c.Flags().StringVar(&data, "data", "data", "data directory (SQLite store, logs); default $STATE_DIRECTORY, else "+installedDataDir+" when it exists and is writable, else ./data")
	c.Flags().BoolVar(&force, "force", false, "take the store over from another node that holds it (only when that node is gone)")
	c.Flags().StringVar(&nodeName, "node-name", "", "which node of the cluster this is: picks its part of nodes (default: node.name of --config, else of the stored document)")
	return c
}

func configCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Validate, import and export configuration documents"}
	c.AddCommand(&cobra.Command{
		Use:   "validate FILE",
		Short: "Check a configuration file as a start would (services built, nothing bound); print every problem with its field path",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if err := app.Validate(cmd.Context(), doc); err != nil {
				return printFieldErrors(cmd, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", args[0])
			return nil
		},
	})
	c.AddCommand(configImportCmd())
	var sf storeFlags
	var version int64
	var showSecrets bool
	export := &cobra.Command{
		Use:   "export",
		Short: "Print the active (or a given) configuration version from the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			var v store.ConfigVersion
			if version > 0 {
				v, err = st.ConfigVersion(cmd.Context(), version)
			} else {
				v, err = st.ActiveConfig(cmd.Context())
			}
			if err != nil {
				return err
			}
			doc := v.Document
			if !showSecrets {
				doc = api.MaskSecrets(doc)
			}
			_, err = cmd.OutOrStdout().Write(doc)
			return err
		},
	}
	sf.add(export)
	export.Flags().Int64Var(&version, "version", 0, "version to export (default: the active one)")
	export.Flags().BoolVar(&showSecrets, "show-secrets", false, "print secrets (turn.rest_secret, the DSN password) instead of "+api.Mask)
	c.AddCommand(export)
	return c
}

// configImportCmd stores a file as the active configuration version under
// the import rule (docs/config.md): refused over a newer API edit unless
// --force. The store is the one the file's store section names.
func configImportCmd() *cobra.Command {
	var data string
	var force bool
	c := &cobra.Command{
		Use:   "import FILE",
		Short: "Validate FILE and store it as the active configuration version (a running node applies it on SIGHUP)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			cfg, err := config.Parse(doc)
			if err != nil {
				return printFieldErrors(cmd, args[0], err)
			}
			if cfg.Store.Backend == "sqlite" {
				if err := os.MkdirAll(data, 0o700); err != nil {
					return err
				}
			}
			sf := storeFlags{config: args[0], data: data}
			st, err := open.Open(cmd.Context(), sf.resolve(cfg), nil)
			if err != nil {
				return err
			}
			defer st.Close()
			v, res, err := app.Import(cmd.Context(), st, args[0], doc, force, osUser())
			if err != nil {
				if errors.Is(err, app.ErrImportRefused) {
					return fmt.Errorf("%s not imported: %s", args[0], res.Detail)
				}
				return printFieldErrors(cmd, args[0], err)
			}
			if res.State == app.FileImported || res.State == app.FileForced {
				st.AppendAudit(cmd.Context(), store.AuditEntry{Time: time.Now().UTC(), User: osUser(), Source: "cli", Action: "config.import", Target: args[0], Detail: fmt.Sprintf("version %d (%s)", v.Version, res.State)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s: %s; active version %d\n", args[0], res.State, res.Detail, v.Version)
			return nil
		},
	}
	c.Flags().StringVar(&data, "data", "data", "data directory")
	c.Flags().BoolVar(&force, "force", false, "import even over a newer API edit")
	return c
}

// printFieldErrors prints config.Errors one per line and exits 2; other
// errors are returned as they are.
func printFieldErrors(cmd *cobra.Command, file string, err error) error {
	es, ok := config.AsErrors(err)
	if !ok {
		return err
	}
	for _, e := range es {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", file, e.Error())
	}
	return exitError{2}
}

// readPassword reads a password from PORTICO_PASSWORD, from the terminal
// without echo, or from one line of stdin, and checks it with validate
// (the API's rule for the same kind of account) wherever it came from.
func readPassword(cmd *cobra.Command, validate func(string) error) (string, error) {
	pw, err := promptPassword(cmd)
	if err != nil {
		return "", err
	}
	if err := validate(pw); err != nil {
		if os.Getenv("PORTICO_PASSWORD") != "" {
			return "", fmt.Errorf("PORTICO_PASSWORD: %w", err)
		}
		return "", err
	}
	return pw, nil
}

func promptPassword(cmd *cobra.Command) (string, error) {
	if p := os.Getenv("PORTICO_PASSWORD"); p != "" {
		return p, nil
	}
	fmt.Fprint(cmd.ErrOrStderr(), "password: ")
	if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func userCmd() *cobra.Command {
	c := &cobra.Command{Use: "user", Short: "Manage administrator accounts in the store"}
	var sf storeFlags
	var role string
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Create an account (password from PORTICO_PASSWORD or stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := api.ParseRole(role)
			if err != nil {
				return err
			}
			if err := api.ValidateUserName(args[0]); err != nil {
				return err
			}
			pw, err := readPassword(cmd, api.ValidatePassword)
			if err != nil {
				return err
			}
			st, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			hash, _ := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
			now := time.Now().UTC()
			if err := st.CreateUser(cmd.Context(), store.User{Name: args[0], PasswordHash: hash, Role: r, CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			st.AppendAudit(cmd.Context(), store.AuditEntry{Time: now, User: osUser(), Source: "cli", Action: "user.create", Target: args[0], Detail: "role " + role})
			fmt.Fprintf(cmd.OutOrStdout(), "user %s (%s) created\n", args[0], role)
			return nil
		},
	}
	sf.add(add)
	add.Flags().StringVar(&role, "role", "admin", "admin or auditor")
	var sf2 storeFlags
	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set an account's password (from PORTICO_PASSWORD or stdin) and unlock it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, api.ValidatePassword)
			if err != nil {
				return err
			}
			st, err := sf2.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			u, err := st.User(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			u.PasswordHash, _ = bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
			u.Disabled = false
			u.UpdatedAt = time.Now().UTC()
			if err := st.UpdateUser(cmd.Context(), u); err != nil {
				return err
			}
			st.AppendAudit(cmd.Context(), store.AuditEntry{Time: u.UpdatedAt, User: osUser(), Source: "cli", Action: "user.update", Target: args[0], Detail: "password"})
			fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed\n", args[0])
			return nil
		},
	}
	sf2.add(passwd)
	var sf3 storeFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := sf3.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			us, err := st.Users(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tDISABLED\tCREATED")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", u.Name, u.Role, u.Disabled, u.CreatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	sf3.add(list)
	c.AddCommand(add, passwd, list)
	return c
}

func osUser() string {
	if u := os.Getenv("USER"); u != "" {
		return "os:" + u
	}
	return "os:unknown"
}

func backupCmd() *cobra.Command {
	var sf storeFlags
	var out string
	c := &cobra.Command{
		Use:   "backup -o FILE|-",
		Short: "Write a consistent backup archive (config versions, users, certificates, history); safe while Portico runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("give the archive path with -o FILE (or -o - for standard output)")
			}
			st, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if out == "-" {
				m, err := backup.Write(cmd.Context(), st, cmd.OutOrStdout(), app.Version)
				if err != nil {
					return err
				}
				b, _ := json.Marshal(m.Counts)
				fmt.Fprintf(cmd.ErrOrStderr(), "backup written to standard output from %s: %s\n", m.SourceBackend, b)
				return nil
			}
			tmp := out + ".partial"
			f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			m, err := backup.Write(cmd.Context(), st, f, app.Version)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(tmp)
				return err
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
			b, _ := json.Marshal(m.Counts)
			fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s from %s: %s\n", out, m.SourceBackend, b)
			return nil
		},
	}
	sf.add(c)
	c.Flags().StringVarP(&out, "output", "o", "", "archive file to write; - for standard output")
	return c
}

func restoreCmd() *cobra.Command {
	var sf storeFlags
	var maxMB int64
	c := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the store's contents with a backup archive, after checking the whole archive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			snap, m, err := backup.ReadLimited(f, backup.Limits{MaxSnapshot: maxMB << 20})
			if err != nil {
				return fmt.Errorf("%s refused, nothing replaced: %w", args[0], err)
			}
			cfg := config.Default()
			if sf.config != "" {
				doc, err := os.ReadFile(sf.config)
				if err != nil {
					return err
				}
				if cfg, err = config.Parse(doc); err != nil {
					return err
				}
			}
			oc := sf.resolve(cfg)
			if oc.Backend == "sqlite" {
				os.MkdirAll(sf.data, 0o700)
			}
			st, err := open.Open(cmd.Context(), oc, nil)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Restore(cmd.Context(), snap); err != nil {
				return fmt.Errorf("restore into %s failed, nothing replaced: %w", st.Backend(), err)
			}
			st.AppendAudit(cmd.Context(), store.AuditEntry{Time: time.Now().UTC(), User: osUser(), Source: "cli", Action: "restore", Target: args[0], Detail: "taken " + m.CreatedAt.Format(time.RFC3339) + " on " + m.SourceBackend})
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s (taken %s on %s) into %s\n", args[0], m.CreatedAt.Format(time.RFC3339), m.SourceBackend, st.Backend())
			return nil
		},
	}
	sf.add(c)
	c.Flags().Int64Var(&maxMB, "max-snapshot-mb", backup.DefaultMaxSnapshot>>20, "refuse archives whose snapshot decompresses to more MiB than this")
	return c
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "portico %s\n", app.Version)
		},
	}
}

// client is the API client the status (and later) commands use.
type client struct {
	url, token string
	http       *http.Client
}

func addClientFlags(c *cobra.Command, cl *client, insecure *bool, caFile *string) {
	c.Flags().StringVar(&cl.url, "url", envOr("PORTICO_URL", "https://127.0.0.1:9443"), "management URL (env PORTICO_URL)")
	c.Flags().StringVar(&cl.token, "token", os.Getenv("PORTICO_TOKEN"), "API bearer token (env PORTICO_TOKEN)")
	c.Flags().BoolVar(insecure, "insecure", os.Getenv("PORTICO_INSECURE") == "1", "skip certificate verification (self-signed management certificate; env PORTICO_INSECURE=1)")
	c.Flags().StringVar(caFile, "ca", os.Getenv("PORTICO_CA"), "CA certificate (PEM) that signed the management certificate (env PORTICO_CA)")
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func (cl *client) setup(insecure bool, caFile string) error {
	if cl.token == "" {
		return errors.New("an API token is required: --token or PORTICO_TOKEN (create one with POST /api/v1/tokens)")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	cl.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	return nil
}

func (cl *client) get(ctx context.Context, path string, v any) error {
	return cl.send(ctx, http.MethodGet, path, nil, v)
}

// send makes one API request (a JSON body when body is not nil) and decodes
// a 2xx answer into v.
func (cl *client) send(ctx context.Context, method, path string, body io.Reader, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(cl.url, "/")+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	resp, err := cl.http.Do(req)
	if err != nil {
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return fmt.Errorf("%w\nthe management certificate is not trusted by this machine: pass --ca FILE with the PEM certificate that signed it (for the self-signed one Portico makes, the certificate itself: openssl s_client -connect HOST:PORT </dev/null | openssl x509 > portico-ca.pem), or --insecure to skip verification (env PORTICO_CA, PORTICO_INSECURE=1)", err)
		}
		return err
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(respBody, &e)
		return fmt.Errorf("%s: %s %s", path, resp.Status, e.Error)
	}
	return json.Unmarshal(respBody, v)
}

func statusCmd() *cobra.Command {
	var cl client
	var insecure bool
	var caFile string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the running node's status through the REST API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cl.setup(insecure, caFile); err != nil {
				return err
			}
			var st map[string]any
			if err := cl.get(cmd.Context(), "/api/v1/status", &st); err != nil {
				return err
			}
			out, _ := json.MarshalIndent(st, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
	addClientFlags(c, &cl, &insecure, &caFile)
	return c
}
