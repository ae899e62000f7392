// Package logging builds Portico's structured logger (log/slog, text or JSON)
// and the size-capped rotating file it writes to.
//
// Rotation is synchronous: the write that would take the live file past its
// size limit first renames the files and deletes the oldest, so the log
// directory never holds more than (MaxFiles+1) × MaxSize bytes, not even for
// a moment. (lumberjack, the usual choice, deletes old files from a
// background goroutine, so a burst can overshoot its cap.)
//
// Each top-level attribute key appears once per record: an attribute added
// again (a component given by app and by the service) replaces the earlier.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// Config selects format, level and destination.
type Config struct {
	Level  string // debug, info, warn, error
	Format string // text or json
	// File is the log file path; empty writes to Stderr.
	File string
	// MaxSize is the live file's size limit in bytes.
	MaxSize int64
	// MaxFiles is how many rotated files are kept besides the live one.
	MaxFiles int
	// Stderr is where logs go when File is empty (default os.Stderr).
	Stderr io.Writer
	// Syslog, when its Address is set, also sends every record to a
	// remote collector (RFC 5424).
	Syslog SyslogSection
	// Hostname is the syslog HOSTNAME when Syslog.Hostname is empty.
	Hostname string
}

// Logger is a logger whose level can change while it runs.
type Logger struct {
	*slog.Logger
	level  *slog.LevelVar
	out    io.Closer
	syslog *Syslog
}

// New opens the destination and returns the logger.
func New(cfg Config) (*Logger, error) {
	lv := new(slog.LevelVar)
	if err := SetLevel(lv, cfg.Level); err != nil {
		return nil, err
	}
	var w io.Writer = cfg.Stderr
	if w == nil {
		w = os.Stderr
	}
	var closer io.Closer = io.NopCloser(nil)
	if cfg.File != "" {
		rf, err := OpenRotating(cfg.File, cfg.MaxSize, cfg.MaxFiles)
		if err != nil {
			return nil, err
		}
		w, closer = rf, rf
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch cfg.Format {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("logging: %q is not a format", cfg.Format)
	}
	l := &Logger{level: lv, out: closer}
	if cfg.Syslog.Address != "" {
		sl, err := NewSyslog(cfg.Syslog, cfg.Hostname)
		if err != nil {
			closer.Close()
			return nil, err
		}
		sl.Start()
		l.syslog = sl
		h = tee{h, sl.Handler(lv)}
	}
	l.Logger = slog.New(&uniqueKeys{next: h})
	return l, nil
}

// Syslog returns the remote syslog sink, or nil when there is none.
func (l *Logger) Syslog() *Syslog { return l.syslog }

// SetLevel changes the level of a running logger.
func (l *Logger) SetLevel(level string) error { return SetLevel(l.level, level) }

// Close stops the remote syslog sink, if any, and closes the log file,
// if any.
func (l *Logger) Close() error {
	if l.syslog != nil {
		l.syslog.Close()
	}
	return l.out.Close()
}

// SetLevel parses level into lv.
func SetLevel(lv *slog.LevelVar, level string) error {
	switch level {
	case "debug":
		lv.Set(slog.LevelDebug)
	case "info", "":
		lv.Set(slog.LevelInfo)
	case "warn":
		lv.Set(slog.LevelWarn)
	case "error":
		lv.Set(slog.LevelError)
	default:
		return fmt.Errorf("logging: %q is not a level", level)
	}
	return nil
}

// Component returns l with the component attribute every record carries.
func Component(l *slog.Logger, name string) *slog.Logger {
	return l.With("component", name)
}

// Rotating is an io.Writer to a file that rotates by size: path, path.1 ... path.N.
type Rotating struct {
	mu       sync.Mutex
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
}

// OpenRotating opens (appending) path, creating its directory with mode 0750.
func OpenRotating(path string, maxSize int64, maxFiles int) (*Rotating, error) {
	if maxSize < 1024 {
		return nil, fmt.Errorf("logging: max size %d is below 1 KiB", maxSize)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("logging: %w", err)
	}
	r := &Rotating{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rotating) open() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("logging: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logging: %w", err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write writes p, rotating first if p would take the file past its limit.
// A record longer than the limit is cut to it.
func (r *Rotating) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	n := len(p)
	if int64(len(p)) > r.maxSize {
		p = p[:r.maxSize]
	}
	if r.size+int64(len(p)) > r.maxSize && r.size > 0 {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	w, err := r.f.Write(p)
	r.size += int64(w)
	if err != nil {
		return w, err
	}
	return n, nil
}

func (r *Rotating) rotate() error {
	r.f.Close()
	r.f = nil
	if r.maxFiles == 0 {
		if err := os.Remove(r.path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return r.open()
	}
	os.Remove(fmt.Sprintf("%s.%d", r.path, r.maxFiles))
	for i := r.maxFiles - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", r.path, i), fmt.Sprintf("%s.%d", r.path, i+1))
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil && !os.IsNotExist(err) {
		return err
	}
	return r.open()
}

// Close closes the file; later writes fail. Safe to call twice.
func (r *Rotating) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
