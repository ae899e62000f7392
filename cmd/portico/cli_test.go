package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/sqlite"
	"github.com/portico-edge/portico/internal/store/storetest"
)

// runCLI runs one portico command in process and returns its stdout,
// stderr and error.
func runCLI(t *testing.T, stdin io.Reader, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := rootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	root.SetIn(stdin)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// dataDir makes a SQLite store with an admin and an active configuration.
func dataDir(t *testing.T, configDoc string) string {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "portico.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("admin-password"), bcrypt.MinCost)
	if err := st.CreateUser(context.Background(), store.User{Name: "admin", PasswordHash: hash, Role: store.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if configDoc != "" {
		if _, err := st.PutConfig(context.Background(), []byte(configDoc), "test", "", 0); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func openData(t *testing.T, dir string) store.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "portico.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestUserAddPasswordRule: a password from PORTICO_PASSWORD meets the same
// rule as one typed in, and as the API's.
func TestUserAddPasswordRule(t *testing.T) {
	dir := dataDir(t, "")
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{
		{"one letter", "a", false},
		{"nine", "123456789", false},
		{"ten", "0123456789", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PORTICO_PASSWORD", tc.password)
			user := "u" + strings.ReplaceAll(tc.name, " ", "")
			_, _, err := runCLI(t, nil, "user", "add", user, "--data", dir)
			if (err == nil) != tc.ok {
				t.Fatalf("user add with a %d-character password: %v", len(tc.password), err)
			}
			if !tc.ok && !strings.Contains(err.Error(), "at least 10") {
				t.Errorf("error does not give the rule: %v", err)
			}
		})
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestPasswordPromptDoesNotEcho: typed at a terminal, the password is not
// echoed back.
func TestPasswordPromptDoesNotEcho(t *testing.T) {
	dir := dataDir(t, "")
	t.Setenv("PORTICO_PASSWORD", "")
	master, slave := openPTY(t)
	const pw = "typed-Secret-42"
	echoed := make(chan string, 1)
	go func() {
		// Everything the terminal shows, until the command is done and the
		// slave side closes (EIO).
		var seen bytes.Buffer
		buf := make([]byte, 256)
		for {
			n, err := master.Read(buf)
			seen.Write(buf[:n])
			if err != nil {
				break
			}
		}
		echoed <- seen.String()
	}()
	// Type once the prompt has switched echo off, as a person would after
	// seeing it (bounded: an echoing prompt never switches it off).
	go func() {
		for range 500 {
			tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
			if err != nil || tio.Lflag&unix.ECHO == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		master.Write([]byte(pw + "\n"))
	}()
	_, _, err := runCLI(t, slave, "user", "add", "typist", "--data", dir)
	slave.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := <-echoed; strings.Contains(got, pw) {
		t.Errorf("the terminal echoed the password: %q", got)
	}
	u, err := openData(t, dir).User(context.Background(), "typist")
	if err != nil || bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(pw)) != nil {
		t.Errorf("typed password not stored: %v", err)
	}
}

// TestTURNUserAddUsesConfiguredRealm: without --realm the realm is the
// active configuration's turn.realm.
func TestTURNUserAddUsesConfiguredRealm(t *testing.T) {
	dir := dataDir(t, "version: 1\nturn:\n  realm: corp.example\n")
	t.Setenv("PORTICO_PASSWORD", "turn-password")
	if _, _, err := runCLI(t, nil, "turn", "user", "add", "alice", "--data", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := openData(t, dir).TURNUser(context.Background(), "corp.example", "alice"); err != nil {
		us, _ := openData(t, dir).TURNUsers(context.Background())
		t.Fatalf("alice not stored under the configured realm: %v; stored: %+v", err, us)
	}
	out, _, err := runCLI(t, nil, "turn", "user", "delete", "alice", "--data", dir)
	if err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("delete under the configured realm: %v %s", err, out)
	}
}

// TestStatusUntrustedCertificate: a certificate the client does not trust
// gets an error that says what to do about it.
func TestStatusUntrustedCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"node":"n1"}`))
	}))
	defer srv.Close()
	t.Setenv("PORTICO_INSECURE", "")
	_, _, err := runCLI(t, nil, "status", "--url", srv.URL, "--token", "pt_x")
	if err == nil || !strings.Contains(err.Error(), "--ca") || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	out, _, err := runCLI(t, nil, "status", "--url", srv.URL, "--token", "pt_x", "--insecure")
	if err != nil || !strings.Contains(out, "n1") {
		t.Fatalf("--insecure: %v %s", err, out)
	}
}

// TestBackupToStdout: -o - writes the archive to standard output and no
// file named "-".
func TestBackupToStdout(t *testing.T) {
	dir := dataDir(t, "version: 1\n")
	t.Chdir(t.TempDir())
	out, errOut, err := runCLI(t, nil, "backup", "-o", "-", "--data", dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("-"); err == nil {
		t.Error(`a file named "-" was written`)
	}
	if _, err := gzip.NewReader(strings.NewReader(out)); err != nil {
		t.Errorf("standard output is not the archive: %v (stderr %q)", err, errOut)
	}
}

// TestNotFoundSaysWhat: errors about missing records name the record.
func TestNotFoundSaysWhat(t *testing.T) {
	dir := dataDir(t, "version: 1\n")
	t.Setenv("PORTICO_PASSWORD", "0123456789")
	for _, args := range [][]string{
		{"user", "passwd", "nosuch-user"},
		{"turn", "user", "delete", "nosuch-user"},
		{"config", "export", "--version", "77"},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			_, _, err := runCLI(t, nil, append(args, "--data", dir)...)
			if err == nil {
				t.Fatal("no error")
			}
			want := args[len(args)-1]
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		})
	}
}

// TestConfigExportMasksSecrets: config export shows no secret unless asked.
func TestConfigExportMasksSecrets(t *testing.T) {
	dir := dataDir(t, "version: 1\nturn:\n  rest_secret: export-Secret-9\n")
	out, _, err := runCLI(t, nil, "config", "export", "--data", dir)
	if err != nil || strings.Contains(out, "export-Secret-9") || !strings.Contains(out, "rest_secret") {
		t.Fatalf("config export: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, nil, "config", "export", "--data", dir, "--show-secrets")
	if err != nil || !strings.Contains(out, "export-Secret-9") {
		t.Fatalf("config export --show-secrets: %v\n%s", err, out)
	}
}

// TestStoreDSNFromEnvironment: without --config, PORTICO_STORE_DSN selects
// the PostgreSQL store, as it does for serve, instead of an empty SQLite
// store under --data.
func TestStoreDSNFromEnvironment(t *testing.T) {
	pg := storetest.StartPostgres(t)
	dsn := pg.NewDatabase(t, "cli_env")
	t.Setenv("PORTICO_STORE_DSN", dsn)
	t.Setenv("PORTICO_PASSWORD", "0123456789")
	t.Chdir(t.TempDir())
	if _, _, err := runCLI(t, nil, "user", "add", "pgadmin"); err != nil {
		t.Fatalf("user add with PORTICO_STORE_DSN and no --config: %v", err)
	}
	out, _, err := runCLI(t, nil, "user", "list")
	if err != nil || !strings.Contains(out, "pgadmin") {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join("data", "portico.db")); err == nil {
		t.Error("a SQLite store was made under ./data")
	}
}
