package turn

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
)

// pionLogs adapts slog to pion's LoggerFactory. pion reports per-request
// and per-packet conditions (a refused permission, a failed send to a gone
// client) at Info and Error; those are logged at Debug, and Warn/Error at
// most a few times a second so that a flood cannot fill the disk.
type pionLogs struct {
	log    *slog.Logger
	second atomic.Int64
	count  atomic.Int64
}

const maxWarnsPerSecond = 5

func (f *pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return &pionLogger{f: f, log: f.log.With("scope", scope)}
}

type pionLogger struct {
	f   *pionLogs
	log *slog.Logger
}

func (l *pionLogger) debug(msg string) { l.log.Debug(msg) }

func (l *pionLogger) debugf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (l *pionLogger) warn(msg string) {
	now := time.Now().Unix()
	if l.f.second.Swap(now) != now {
		l.f.count.Store(0)
	}
	if l.f.count.Add(1) > maxWarnsPerSecond {
		return
	}
	l.log.Warn(msg)
}

func (l *pionLogger) Trace(msg string)                  { l.debug(msg) }
func (l *pionLogger) Tracef(format string, args ...any) { l.debugf(format, args...) }
func (l *pionLogger) Debug(msg string)                  { l.debug(msg) }
func (l *pionLogger) Debugf(format string, args ...any) { l.debugf(format, args...) }
func (l *pionLogger) Info(msg string)                   { l.debug(msg) }
func (l *pionLogger) Infof(format string, args ...any)  { l.debugf(format, args...) }
func (l *pionLogger) Warn(msg string)                   { l.warn(msg) }
func (l *pionLogger) Warnf(format string, args ...any)  { l.warn(fmt.Sprintf(format, args...)) }
func (l *pionLogger) Error(msg string)                  { l.warn(msg) }
func (l *pionLogger) Errorf(format string, args ...any) { l.warn(fmt.Sprintf(format, args...)) }
