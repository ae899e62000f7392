package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestExplainPrivilege(t *testing.T) {
	listenDenied := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EACCES)}
	tests := []struct {
		name    string
		err     error
		explain bool
	}{
		{"nil", nil, false},
		{"listen denied", fmt.Errorf("management.listen: %w", listenDenied), true},
		{"listen in use", &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}, false},
		{"dial denied", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EACCES)}, false},
		{"other", errors.New("store: closed"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explainPrivilege(tt.err)
			if !errors.Is(got, tt.err) {
				t.Fatalf("explainPrivilege lost the cause: %v", got)
			}
			if explained := got != nil && strings.Contains(got.Error(), "CAP_NET_BIND_SERVICE"); explained != tt.explain {
				t.Errorf("explainPrivilege(%v) = %v", tt.err, got)
			}
		})
	}
}

func TestCheckDataDirNamesTheFlag(t *testing.T) {
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := checkDataDir(file + "/data") // a path under a regular file: not a directory, even for root
	if err == nil || !strings.Contains(err.Error(), "--data "+file+"/data") || !strings.Contains(err.Error(), "can write") {
		t.Errorf("checkDataDir = %v", err)
	}
	if err := checkDataDir(t.TempDir() + "/new"); err != nil {
		t.Errorf("checkDataDir on a new directory: %v", err)
	}
}
