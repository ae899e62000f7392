// Package storetest is the behaviour every store.Store backend must show,
// run against SQLite and PostgreSQL alike, and a throwaway PostgreSQL server
// for tests.
package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// pgBin finds Debian's PostgreSQL server binaries (not on PATH).
func pgBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server under /usr/lib/postgresql/*/bin (install Debian's postgresql)")
}

// Postgres is a throwaway PostgreSQL server.
type Postgres struct {
	DSN  string
	Port int
	bin  string
	dir  string
	cmd  *exec.Cmd
	t    testing.TB
}

// StartPostgres returns PORTICO_TEST_POSTGRES_DSN's server when set;
// otherwise it initialises a cluster in a temp dir and runs it on a free
// loopback port until the test ends. Under -short it skips; in a full run a
// missing PostgreSQL fails the test.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	if dsn := os.Getenv("PORTICO_TEST_POSTGRES_DSN"); dsn != "" {
		return &Postgres{DSN: dsn, t: t}
	}
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped under -short")
	}
	bin, err := pgBin()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "portico-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{bin: bin, dir: dir, t: t}
	t.Cleanup(p.cleanup)
	os.Chmod(dir, 0o777)
	// PostgreSQL refuses to run as root; Debian's package made the postgres user.
	if out, err := p.asPostgres(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	p.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
	p.Start()
	return p
}

func (p *Postgres) asPostgres(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("setpriv", append([]string{"--reuid=postgres", "--regid=postgres", "--init-groups", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// Start runs the server (again, after Stop) and waits until it accepts connections.
func (p *Postgres) Start() {
	p.t.Helper()
	p.cmd = p.asPostgres(filepath.Join(p.bin, "postgres"), "-D", filepath.Join(p.dir, "data"), "-k", p.dir,
		"-c", "listen_addresses=127.0.0.1", "-p", fmt.Sprint(p.Port), "-c", "fsync=off", "-c", "max_connections=200")
	var log strings.Builder
	p.cmd.Stderr = &log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port), time.Second)
		if err == nil {
			c.Close()
			time.Sleep(300 * time.Millisecond) // accepting TCP precedes accepting sessions by a moment
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("postgres did not start: %s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop shuts the server down fast (the store is "lost").
func (p *Postgres) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt) // SIGINT: fast shutdown
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

// NewDatabase creates an empty database on the server and returns its DSN.
func (p *Postgres) NewDatabase(t testing.TB, name string) string {
	t.Helper()
	db, err := openPG(p.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return strings.Replace(p.DSN, "/postgres?", "/"+name+"?", 1)
}

func (p *Postgres) cleanup() {
	p.Stop()
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}
