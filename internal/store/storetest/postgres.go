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
	osuser "os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
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
	// DSN reaches the server's "postgres" database as the superuser
	// "postgres" (trust authentication, loopback only).
	DSN string
	// Port is the loopback TCP port; 0 when the server came from
	// PORTICO_TEST_POSTGRES_DSN (and so cannot be stopped by the test).
	Port   int
	bin    string
	dir    string
	cred   *syscall.Credential // run as this user when we are root
	cmd    *exec.Cmd
	log    *strings.Builder
	t      testing.TB
	waitCh chan error
}

// StartPostgres returns PORTICO_TEST_POSTGRES_DSN's server when set;
// otherwise it initialises a cluster in a temp dir and runs it on a free
// loopback port until the test ends (t.Cleanup stops it and removes the
// directory). As root it runs the server as the "postgres" user Debian's
// package creates, since PostgreSQL refuses to run as root. Under -short it
// skips; in a full run a missing PostgreSQL fails the test.
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
	if os.Geteuid() == 0 {
		u, err := osuser.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user (Debian's postgresql package makes it): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	initdb := p.command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
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

// command runs name as the server's user, in the server's directory (the
// test's own working directory may be unreadable to that user). If the test
// binary dies, the kernel sends the server SIGQUIT (immediate shutdown), so
// no server outlives its test.
func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGQUIT}
	return cmd
}

// Start runs the server (again, after Stop) and waits until it accepts sessions.
func (p *Postgres) Start() {
	p.t.Helper()
	if p.bin == "" {
		p.t.Fatal("storetest: cannot start an external PostgreSQL")
	}
	p.cmd = p.command(filepath.Join(p.bin, "postgres"), "-D", filepath.Join(p.dir, "data"), "-k", p.dir,
		"-c", "listen_addresses=127.0.0.1", "-p", fmt.Sprint(p.Port),
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	p.log = &strings.Builder{}
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan error, 1)
	cmd := p.cmd
	go func() { exited <- cmd.Wait() }()
	p.waitCh = exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, err := openPG(p.DSN)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = db.PingContext(ctx)
			cancel()
			db.Close()
		}
		if err == nil {
			return
		}
		select {
		case werr := <-exited:
			p.cmd = nil
			p.t.Fatalf("postgres exited at start: %v\n%s", werr, p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("postgres did not accept sessions within 30s: %v\n%s", err, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop shuts the server down fast (SIGINT: open sessions are cut), so the
// store is "lost" as in a crash of the database host.
func (p *Postgres) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.waitCh:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.waitCh
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
