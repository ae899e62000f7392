package logging

import (
	"context"
	"log/slog"
)

// uniqueKeys keeps one value per top-level attribute key: an attribute
// added again, by With or in the record, replaces the earlier one. slog's
// own handlers write both, so a service that adds its component to a
// logger app already gave one would log "component" twice, and JSON
// readers keep only one of them, not always the same.
//
// It holds the top-level attributes itself and adds them to each record;
// after WithGroup, attributes go into the group and are passed on as they
// are.
type uniqueKeys struct {
	next  slog.Handler
	attrs []slog.Attr
}

func (h *uniqueKeys) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *uniqueKeys) WithAttrs(as []slog.Attr) slog.Handler {
	return &uniqueKeys{next: h.next, attrs: merge(h.attrs, as)}
}

func (h *uniqueKeys) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.next.WithAttrs(h.attrs).WithGroup(name)
}

func (h *uniqueKeys) Handle(ctx context.Context, r slog.Record) error {
	rec := make([]slog.Attr, 0, len(h.attrs)+r.NumAttrs())
	rec = append(rec, h.attrs...)
	r.Attrs(func(a slog.Attr) bool { rec = put(rec, a); return true })
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	nr.AddAttrs(rec...)
	return h.next.Handle(ctx, nr)
}

// merge returns a copy of base with as put into it.
func merge(base, as []slog.Attr) []slog.Attr {
	out := append([]slog.Attr(nil), base...)
	for _, a := range as {
		out = put(out, a)
	}
	return out
}

// put replaces the attribute of a's key in attrs with a, or appends a.
func put(attrs []slog.Attr, a slog.Attr) []slog.Attr {
	for i := range attrs {
		if attrs[i].Key == a.Key {
			attrs[i] = a
			return attrs
		}
	}
	return append(attrs, a)
}
