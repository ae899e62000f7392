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
//   - sipgoHandler wraps the log handler given to sipgo: its "failed to
//     parse" records (messages that looked like SIP but do not parse)
//     lose their payload, become debug, are rate-limited and counted
//     (reason "unparsable"); sipgo's own attributes are de-duplicated by
//     key (it adds "caller" once per layer).
//
// Stream transports hand the filter arbitrary chunks of the byte stream,
// so only datagrams are judged there; a stream that does not parse is
// closed by sipgo after one (bounded) record.

// Reasons of portico_sip_dropped_total.
const (
	dropNotSIP     = "not_sip"
	dropBadACK     = "malformed_ack"
	dropUnparsable = "unparsable"
	dropScanner    = "scanner"
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
		if !strings.EqualFold(info.Transport, "udp") {
			return data, nil
		}
		reason := datagramFault(data)
		if reason == "" {
			return data, nil
		}
		s.m.dropped.WithLabelValues(sd.name, reason).Inc()
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
		switch strings.ToLower(string(bytes.TrimSpace(name))) {
		case "via", "v":
			via = true
		case "cseq":
			cseq = true
		case "call-id", "i":
			cid = true
		case "from", "f":
			from = true
		case "to", "t":
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

func (h *sipgoHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "failed to parse" {
		h.s.m.dropped.WithLabelValues(h.side, dropUnparsable).Inc()
		ok, n := h.s.junkLog.allow(h.side+"|sipgo", time.Now())
		if !ok || !h.next.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		nr := slog.NewRecord(r.Time, slog.LevelDebug, "dropped unparsable message", r.PC)
		nr.AddAttrs(h.attrs...)
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "data":
				v := a.Value.String()
				nr.AddAttrs(slog.Int("size", len(v)), slog.String("head", head([]byte(v))))
			case "error":
				e := a.Value.String()
				if len(e) > 2*junkHead {
					e = e[:2*junkHead]
				}
				nr.AddAttrs(slog.String("error", strconv.QuoteToASCII(e)))
			}
			return true
		})
		nr.AddAttrs(slog.Int("dropped_since_last", n))
		return h.next.Handle(ctx, nr)
	}
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	nr.AddAttrs(h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		for _, b := range h.attrs {
			if b.Key == a.Key {
				return true
			}
		}
		nr.AddAttrs(a)
		return true
	})
	return h.next.Handle(ctx, nr)
}

// scannerAgents are User-Agent substrings of SIP scanners and attack
// tools (lower case). Their requests are dropped unanswered.
var scannerAgents = []string{
	"friendly-scanner", "sipvicious", "sipcli", "vaxsipuseragent", "sundayddr", "pplsip",
	"sip-scan", "sipscan", "sivus", "siparmyknife", "voipsniff", "vaxasterisk",
}

// isScanner reports whether req's User-Agent names a known scanner.
func isScanner(req *sip.Request) bool {
	h := req.GetHeader("User-Agent")
	if h == nil {
		return false
	}
	ua := strings.ToLower(h.Value())
	for _, s := range scannerAgents {
		if strings.Contains(ua, s) {
			return true
		}
	}
	return false
}
