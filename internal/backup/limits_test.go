package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// countingReader counts what Read takes from the upload.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// bomb is the start of an archive whose snapshot.json claims size bytes
// (and whose body is never written: a reader that believes the header
// would go on to inflate it).
func bomb(t *testing.T, manifest []byte, size int64) []byte {
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	tw := tar.NewWriter(gw)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o600, Size: int64(len(manifest)), Typeflag: tar.TypeReg})
	tw.Write(manifest)
	if err := tw.WriteHeader(&tar.Header{Name: "snapshot.json", Mode: 0o600, Size: size, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	gw.Write(make([]byte, 64<<10)) // some of the body
	gw.Close()
	return out.Bytes()
}

// TestRefusesOversizedEntry: an entry whose header is past the limit is
// refused by its header, with an error that names the limit, before it is
// inflated.
func TestRefusesOversizedEntry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits Limits
		size   int64
	}{
		{"default limit", Limits{}, DefaultMaxSnapshot + 1},
		{"the daemon's old 1 GiB limit", Limits{}, 1 << 30},
		{"a lower limit", Limits{MaxSnapshot: 1 << 20}, 2 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := bomb(t, []byte(`{"format":"portico-backup","format_version":1}`), tc.size)
			cr := &countingReader{r: bytes.NewReader(a)}
			_, _, err := ReadLimited(cr, tc.limits)
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Read = %v, want ErrInvalid and ErrTooLarge", err)
			}
			if !strings.Contains(err.Error(), "snapshot.json") || !strings.Contains(err.Error(), "limit") {
				t.Errorf("error %q does not say which entry and what limit", err)
			}
		})
	}
}

// TestRefusesOverTotal: the whole decompressed stream is capped too, so
// entries under their own limit cannot add up past it.
func TestRefusesOverTotal(t *testing.T) {
	a := archive(t, seeded(t))
	_, _, err := ReadLimited(bytes.NewReader(a), Limits{MaxTotal: 2048})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "2048") {
		t.Fatalf("Read over the total cap = %v", err)
	}
}

// bigStore is a snapshot source of n calls.
type bigStore struct {
	store.Store
	snap *store.Snapshot
}

func (b bigStore) Snapshot(context.Context) (*store.Snapshot, error) { return b.snap, nil }
func (b bigStore) Backend() string                                   { return "sqlite" }

// TestReadStreams: reading an archive costs about the decoded records, not
// copies of the decompressed snapshot on top of them (reading it whole
// allocated 9x its size; streamed, about 1.5x).
func TestReadStreams(t *testing.T) {
	st := seeded(t)
	snap, err := st.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range 40000 {
		snap.Calls = append(snap.Calls, store.CallRecord{ID: fmt.Sprint("call-", i), Protocol: "sip", From: strings.Repeat("f", 200), To: "b",
			StartedAt: now, EndedAt: now, Disposition: "normal"})
	}
	var a bytes.Buffer
	if _, err := Write(context.Background(), bigStore{st, snap}, &a, "test"); err != nil {
		t.Fatal(err)
	}
	size := rawSnapshotSize(t, a.Bytes())
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, _, err := Read(bytes.NewReader(a.Bytes()))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Calls) != 40001 {
		t.Fatalf("%d calls read", len(got.Calls))
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("snapshot %d bytes; Read allocated %d bytes (%.2fx)", size, alloc, float64(alloc)/float64(size))
	if alloc > uint64(size)*2 {
		t.Errorf("Read allocated %d bytes for a %d-byte snapshot: it holds a copy of the snapshot", alloc, size)
	}
}

func rawSnapshotSize(t *testing.T, a []byte) int64 {
	gz, _ := gzip.NewReader(bytes.NewReader(a))
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "snapshot.json" {
			return h.Size
		}
	}
}
