package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		st, err := Open(context.Background(), filepath.Join(t.TempDir(), "portico.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "portico.db")
	st, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v, want 0600", fi.Mode().Perm())
	}
	// Reopening an existing database migrates nothing and keeps data.
	st.PutConfig(context.Background(), []byte("x"), "a", "", 0)
	st.Close()
	st2, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if v, err := st2.ActiveConfig(context.Background()); err != nil || v.Version != 1 {
		t.Errorf("after reopen: %+v, %v", v, err)
	}
}
