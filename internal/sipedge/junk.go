package sipedge

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/guard"
)

// What the Internet sends a SIP port is largely not SIP: scanners, HTTP
// and TLS probes, random bytes. Such input costs a counter and a bounded,
// rate-limited debug line, never more (an earlier version logged every
// datagram whole at ERROR: 2,200 junk packets made 7.4 MB of log).
//
//   - inboundFilter, the transports' read filter, drops datagrams whose
//     first line is not a SIP request or status line before sipgo parses
//     them, and ACKs too malformed to name a transaction (sipgo would
//     answer those with a 400; an ACK is never answered, RFC 3261 section
//     17.2.3). Counted in portico_sip_dropped_total{interface,reason}.
//   - sipgoHandler wraps the log handler given to sipgo. Its records that
//     one message from the network triggers ("failed to parse": looked
//     like SIP but does not parse, reason "unparsable"; a request or
//     response without what keys a transaction, reason "malformed") are
//     counted, become debug and rate-limited, and lose their payload
//     (kept: size and the first bytes). Every string attribute is cut to
//     sipgoAttrMax, and sipgo's own attributes are de-duplicated by key
//     (it adds "caller" once per layer).
//
// Stream transports hand the filter arbitrary chunks of the byte stream,
// so there only malformed ACKs among the complete messages a chunk starts
// with are cut out (streamACKs); a stream that does not parse is closed by
// sipgo after one (bounded) record.

// Reasons of portico_sip_dropped_total.
const (
	dropNotSIP     = "not_sip"
	dropBadACK     = "malformed_ack"
	dropUnparsable = "unparsable"
	dropMalformed  = "malformed"
	dropScanner    = "scanner"
	dropSTUN       = "stun"
)

const (
	// junkLogEvery is how often one source (or, for sipgo's records,
	// which carry no source, the side) may log a dropped message.
	junkLogEvery = time.Minute
	// junkLogSources bounds the sources remembered for rate limiting;
	// beyond it, new sources share one budget.
	junkLogSources = 4096
	// junkHead is how much of a dropped message a log line quotes.
	junkHead = 48
)

// logLimiter allows one log line per key per junkLogEvery and counts what
// it suppressed.
type logLimiter struct {
	mu   sync.Mutex
	keys map[string]*limitEntry
}

type limitEntry struct {
	last       time.Time
	suppressed int
}

// allow reports whether key may log now, and how many lines it was denied
// since it last could.
func (l *logLimiter) allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]*limitEntry{}
	}
	e := l.keys[key]
	if e == nil {
		if len(l.keys) >= junkLogSources {
			key = "*"
			e = l.keys[key]
		}
		if e == nil {
			e = &limitEntry{}
			l.keys[key] = e
		}
	}
	if !e.last.IsZero() && now.Sub(e.last) < junkLogEvery {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// head quotes the first junkHead bytes of b for a log line.
func head(b []byte) string {
	if len(b) > junkHead {
		b = b[:junkHead]
	}
	return strconv.QuoteToASCII(string(b))
}

// inboundFilter returns the read filter of sd's transports.
func (s *Server) inboundFilter(sd *side) sip.TransportReadFilter {
	return func(info sip.TransportReadProps, data []byte) ([]byte, error) {
		var reason string
		if strings.EqualFold(info.Transport, "udp") {
			if s.adm.shedDatagram(s.lc().cfg.Overload, data) {
				s.m.dropped.WithLabelValues(sd.name, dropOverload).Inc()
				return nil, nil
			}
			reason = datagramFault(data)
		} else if kept, cut := streamACKs(data); cut {
			s.m.dropped.WithLabelValues(sd.name, dropBadACK).Inc()
			return kept, nil
		}
		if reason == "" {
			return data, nil
		}
		s.m.dropped.WithLabelValues(sd.name, reason).Inc()
		if reason == dropSTUN {
			return nil, nil // a keepalive: counted, not worth a line
		}
		src := ""
		if info.RemoteAddr != nil {
			src = info.RemoteAddr.String()
		}
		key := src
		if ap, err := netip.ParseAddrPort(src); err == nil {
			key = ap.Addr().String()
		}
		if ok, n := s.junkLog.allow(sd.name+"|"+key, time.Now()); ok {
			s.log.Debug("dropped inbound datagram", "side", sd.name, "source", src, "reason", reason,
				"size", len(data), "head", head(data), "dropped_since_last", n)
		}
		return nil, nil
	}
}

// datagramFault says why a datagram is dropped before parsing, or "".
func datagramFault(data []byte) string {
	if len(bytes.Trim(data, "\r\n")) == 0 {
		return "" // CRLF keepalive, sipgo answers it
	}
	if isSTUN(data) {
		return dropSTUN
	}
	line, rest, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if !sipStartLine(line) {
		return dropNotSIP
	}
	if bytes.HasPrefix(line, []byte("ACK ")) && !hasTxHeaders(rest) {
		return dropBadACK
	}
	return ""
}

// isSTUN reports whether b is a STUN message (RFC 8489 section 5: two
// zero bits, a length that is a multiple of 4 and fits, the magic cookie),
// such as an RFC 5626 keepalive.
func isSTUN(b []byte) bool {
	return len(b) >= 20 && b[0]&0xc0 == 0 && int(b[2])<<8|int(b[3]) == len(b)-20 && b[3]&3 == 0 &&
		b[4] == 0x21 && b[5] == 0x12 && b[6] == 0xa4 && b[7] == 0x42
}

// streamACKs returns a chunk read from a stream without the ACKs in it
// that lack what keys a transaction, and whether it removed any. A chunk
// is whatever one read returned, not a message; this looks only at the
// complete messages at its start (a client writes each message at once, so
// a chunk usually starts at a message boundary) and passes the rest on
// unchanged for the parser to frame.
func streamACKs(data []byte) ([]byte, bool) {
	if !bytes.Contains(data, []byte("ACK ")) {
		return data, false // most chunks
	}
	var out []byte
	rest := data
	cut := false
	for {
		rest = bytes.TrimLeft(rest, "\r\n")
		line, _, _ := bytes.Cut(rest, []byte("\n"))
		if !sipStartLine(bytes.TrimSuffix(line, []byte("\r"))) {
			break
		}
		end := bytes.Index(rest, []byte("\r\n\r\n"))
		if end < 0 {
			break
		}
		n := end + 4 + contentLength(rest[:end+2])
		if n > len(rest) {
			break
		}
		msg := rest[:n]
		if bytes.HasPrefix(msg, []byte("ACK ")) && !hasTxHeaders(msg[len(line)+1:]) {
			if !cut {
				out = append(out, data[:len(data)-len(rest)]...)
				cut = true
			}
		} else if cut {
			out = append(out, msg...)
		}
		rest = rest[n:]
	}
	if !cut {
		return data, false
	}
	return append(out, rest...), true
}

// contentLength is the Content-Length (or l) of a header section, 0 when
// absent or not a number.
func contentLength(hdrs []byte) int {
	for len(hdrs) > 0 {
		var line []byte
		line, hdrs, _ = bytes.Cut(hdrs, []byte("\n"))
		name, v, ok := bytes.Cut(bytes.TrimSuffix(line, []byte("\r")), []byte(":"))
		if !ok {
			continue
		}
		if name = bytes.TrimSpace(name); foldEq(name, "content-length") || foldEq(name, "l") {
			c := 0
			for _, d := range bytes.TrimSpace(v) {
				if d < '0' || d > '9' || c > 1<<20 {
					return 0
				}
				c = c*10 + int(d-'0')
			}
			return c
		}
	}
	return 0
}

// foldEq reports whether b equals the lower-case ASCII name s, ignoring
// case.
func foldEq(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(s) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// sipStartLine reports whether line is shaped like a SIP/2.0 request line
// ("METHOD uri SIP/2.0") or status line ("SIP/2.0 200 OK").
func sipStartLine(line []byte) bool {
	if len(line) > 8192 {
		return false
	}
	for _, c := range line {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	if rest, ok := bytes.CutPrefix(line, []byte("SIP/2.0 ")); ok {
		return len(rest) >= 3 && rest[0] >= '1' && rest[0] <= '6' && rest[1] >= '0' && rest[1] <= '9' && rest[2] >= '0' && rest[2] <= '9'
	}
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(method) == 0 || !bytes.HasSuffix(rest, []byte(" SIP/2.0")) || len(rest) == len(" SIP/2.0") {
		return false
	}
	for _, c := range method {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`()<>@,;:\"/[]?={}`), c) >= 0 {
			return false
		}
	}
	return true
}

// hasTxHeaders reports whether a header section (up to its blank line)
// has what a transaction is keyed by: Via, CSeq, Call-ID, From and To
// (long or compact names).
func hasTxHeaders(hdrs []byte) bool {
	var via, cseq, cid, from, to bool
	for len(hdrs) > 0 {
		var line []byte
		line, hdrs, _ = bytes.Cut(hdrs, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		switch {
		case foldEq(name, "via") || foldEq(name, "v"):
			via = true
		case foldEq(name, "cseq"):
			cseq = true
		case foldEq(name, "call-id") || foldEq(name, "i"):
			cid = true
		case foldEq(name, "from") || foldEq(name, "f"):
			from = true
		case foldEq(name, "to") || foldEq(name, "t"):
			to = true
		}
	}
	return via && cseq && cid && from && to
}

// sipgoHandler is the slog.Handler given to sipgo's layers of one side.
type sipgoHandler struct {
	next  slog.Handler // the side's handler, attributes applied
	attrs []slog.Attr  // sipgo's own, one per key
	group string
	s     *Server
	side  string
}

func (s *Server) sipgoLogger(side string) *slog.Logger {
	return slog.New(&sipgoHandler{next: s.log.With("side", side).Handler(), s: s, side: side})
}

func (h *sipgoHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *sipgoHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if h.group != "" {
		return &sipgoHandler{next: h.next.WithAttrs(as), attrs: h.attrs, group: h.group, s: h.s, side: h.side}
	}
	out := append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		replaced := false
		for i := range out {
			if out[i].Key == a.Key {
				out[i], replaced = a, true
			}
		}
		if !replaced {
			out = append(out, a)
		}
	}
	return &sipgoHandler{next: h.next, attrs: out, group: h.group, s: h.s, side: h.side}
}

func (h *sipgoHandler) WithGroup(name string) slog.Handler {
	next := h.next.WithAttrs(h.attrs).WithGroup(name)
	return &sipgoHandler{next: next, group: name, s: h.s, side: h.side}
}

// sipgoPerMessage are sipgo's records that input from the network
// triggers, one per message, with the reason they are counted under.
var sipgoPerMessage = map[string]string{
	"failed to parse":                     dropUnparsable,
	"Server tx failed to handle request":  dropMalformed,
	"Client tx failed to handle response": dropMalformed,
	"unsupported message, skip it":        dropMalformed,
}

// sipgoAttrMax bounds a string attribute of a sipgo record.
const sipgoAttrMax = 160

func (h *sipgoHandler) Handle(ctx context.Context, r slog.Record) error {
	level := r.Level
	var extra []slog.Attr
	if reason, ok := sipgoPerMessage[r.Message]; ok {
		h.s.m.dropped.WithLabelValues(h.side, reason).Inc()
		ok, n := h.s.junkLog.allow(h.side+"|sipgo|"+reason, time.Now())
		if !ok || !h.next.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		level = slog.LevelDebug
		extra = append(extra, slog.Int("dropped_since_last", n))
	}
	nr := slog.NewRecord(r.Time, level, r.Message, r.PC)
	nr.AddAttrs(h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		for _, b := range h.attrs {
			if b.Key == a.Key {
				return true
			}
		}
		switch k := a.Value.Kind(); {
		case a.Key == "data":
			v := a.Value.String()
			nr.AddAttrs(slog.Int("size", len(v)), slog.String("head", head([]byte(v))))
		case k == slog.KindString || k == slog.KindAny:
			if v := a.Value.String(); len(v) > sipgoAttrMax {
				a = slog.String(a.Key, strconv.QuoteToASCII(v[:sipgoAttrMax])+"...")
			}
			nr.AddAttrs(a)
		default:
			nr.AddAttrs(a)
		}
		return true
	})
	nr.AddAttrs(extra...)
	return h.next.Handle(ctx, nr)
}

// isScanner reports whether req's User-Agent names a known scanner: one
// of the guard's scanner_agents when a guard is wired, else of the guard's
// default list. Such requests are dropped unanswered whether or not the
// guard blocks the source yet.
func (s *Server) isScanner(req *sip.Request) bool {
	h := firstHeader(req, "User-Agent")
	if h == nil {
		return false
	}
	if s.deps.Guard != nil {
		return s.deps.Guard.ScannerAgent(h.Value())
	}
	return guard.MatchAgent(h.Value(), guard.DefaultScannerAgents)
}
