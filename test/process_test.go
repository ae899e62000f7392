package test

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// process is a command a test started, with its output collected.
type process struct {
	out  *syncBuffer
	done chan error
}

// startProcess starts cmd with its output in a buffer. When the test ends
// the process gets SIGTERM and 30 s to stop; then it is killed and the test
// fails.
func startProcess(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop within 30s of SIGTERM\n%s", cmd.Path, p.out.String())
		}
	})
	return p
}

// waitOK polls url (HTTPS, any certificate) until it answers 200; the test
// fails when the process exits first or within d nothing answered.
func (p *process) waitOK(t *testing.T, url string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := insecureClient(nil).Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("exited before %s answered: %v\n%s", url, err, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 200 from %s within %v\n%s", url, d, p.out.String())
		}
	}
}
