package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func dirSize(t *testing.T, dir string) (int64, int) {
	t.Helper()
	var total int64
	files := 0
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		total += info.Size()
		files++
	}
	return total, files
}

// TestFloodStaysUnderCap floods the logger from several goroutines and checks
// after every batch that the directory never exceeds its cap.
func TestFloodStaysUnderCap(t *testing.T) {
	dir := t.TempDir()
	const maxSize, maxFiles = 64 << 10, 3
	l, err := New(Config{Level: "debug", Format: "json", File: filepath.Join(dir, "portico.log"), MaxSize: maxSize, MaxFiles: maxFiles})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	limit := int64(maxSize * (maxFiles + 1))
	payload := strings.Repeat("x", 300)
	for round := 0; round < 40; round++ {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					l.Info("flood", "component", "test", "round", round, "i", i, "payload", payload)
				}
			}()
		}
		wg.Wait()
		if size, files := dirSize(t, dir); size > limit || files > maxFiles+1 {
			t.Fatalf("round %d: log dir holds %d bytes in %d files; cap is %d bytes in %d files", round, size, files, limit, maxFiles+1)
		}
	}
	// 40×400 records of ~400 bytes is ~6 MB: rotation must have happened.
	if _, err := os.Stat(filepath.Join(dir, "portico.log.3")); err != nil {
		t.Errorf("expected rotated file portico.log.3: %v", err)
	}
	// Every kept line is a whole JSON record.
	b, err := os.ReadFile(filepath.Join(dir, "portico.log.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("rotated file holds a broken record %q: %v", line, err)
		}
	}
}

func TestLevelChangesLive(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Config{Level: "warn", Format: "text", Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	if err := l.SetLevel("info"); err != nil {
		t.Fatal(err)
	}
	Component(l.Logger, "api").Info("shown")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "shown") || !strings.Contains(out, "component=api") {
		t.Errorf("unexpected log output %q", out)
	}
	if err := l.SetLevel("loud"); err == nil {
		t.Error("SetLevel accepted a bad level")
	}
}
