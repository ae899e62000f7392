package sipedge

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Topology hiding of headers. Portico builds every message it sends from
// scratch; a header of a message received on one side reaches the message
// Portico sends on the other side only when it is on crossing, the allow
// list below, and only through copyHeaders. Each entry says why it may
// cross. What is not on the list never crosses, in particular:
//
//   - Via, Record-Route, Route, Path: hop-by-hop; they name the hosts of one
//     side (Portico writes its own for each side).
//   - Contact: names a host of one side. The REGISTER Contact of an outside
//     endpoint is relayed inside (it is the binding); the 2xx back carries
//     only the bindings of the endpoint's own flow (registerContacts); a
//     3xx's targets are translated (redirectContacts).
//   - Server and Warning: the inside's product and version, and Warning's
//     warn-agent is the inside host and port (Kamailio's sip_warning adds
//     the source address it saw: Portico's internal address).
//   - Reason, Error-Info, Alert-Info, Call-Info, History-Info, Diversion,
//     Reply-To, P-* (P-Asserted-Identity, P-Charging-Vector ...), X-*:
//     URIs, host names or addresses of the side they come from.
//
// Values are copied as they are, except where clean says otherwise.
var crossing = map[string]struct {
	why   string
	clean func(string) (string, bool) // nil: as is; false: drop
}{
	// REGISTER is relayed inside in the endpoint's own transaction: the
	// registrar needs the AOR, Call-ID and CSeq the endpoint chose (they
	// name the outside endpoint, not the inside). CANCEL repeats these of
	// Portico's own INVITE on the same side.
	"from":    {why: "REGISTER: the endpoint's own AOR; CANCEL: Portico's INVITE"},
	"to":      {why: "REGISTER: the endpoint's own AOR; CANCEL: Portico's INVITE"},
	"call-id": {why: "REGISTER: the endpoint's own Call-ID; CANCEL: Portico's INVITE"},
	"cseq":    {why: "REGISTER: the endpoint's own CSeq"},
	"contact": {why: "REGISTER towards the inside only: the outside endpoint's binding"},

	// Digest authentication runs end to end (RFC 3261 section 22): the
	// challenge holds realm, nonce and opaque, the answer the endpoint's
	// credentials. Neither names a host of the side it comes from.
	"authorization":       {why: "digest answer, towards the inside"},
	"proxy-authorization": {why: "digest answer, towards the inside"},
	"www-authenticate":    {why: "digest challenge of the registrar"},
	"proxy-authenticate":  {why: "digest challenge of the proxy"},

	// Numbers and option tags: they describe the protocol, not the network.
	"expires":     {why: "REGISTER expiry (capped by Portico)", clean: deltaSeconds},
	"min-expires": {why: "423 Interval Too Brief: the shortest expiry accepted", clean: deltaSeconds},
	"retry-after": {why: "when to retry a 503 or 480; the comment is dropped", clean: deltaSeconds},
	"date":        {why: "REGISTER 2xx: endpoints may set their clock from it (RFC 3261 section 10.3)", clean: httpDate},
	"supported":   {why: "option tags (path, outbound, timer, 100rel)"},
	"require":     {why: "option tags the far end insists on (timer in a 2xx, outbound in a REGISTER 2xx)"},
	"unsupported": {why: "420: option tags the far end does not know"},
	"allow":       {why: "method names"},
	"accept":      {why: "body types"},

	// Session timers (RFC 4028): negotiated end to end, see sessiontimer.go.
	"session-expires": {why: "RFC 4028 session interval and refresher"},
	"x":               {why: "RFC 4028 session interval (compact form)"},
	"min-se":          {why: "RFC 4028 floor, in requests and 422"},

	// In-dialog requests: how to read the body they carry.
	"content-type":        {why: "the relayed body's type"},
	"content-disposition": {why: "the relayed body's disposition"},
	"event":               {why: "SUBSCRIBE/NOTIFY event package"},
	"subscription-state":  {why: "NOTIFY subscription state"},
	"info-package":        {why: "INFO package (RFC 6086), e.g. DTMF"},
	"recv-info":           {why: "INFO packages accepted (RFC 6086)"},

	// Outside to inside only: what the caller asked for.
	"subject":    {why: "INVITE subject, towards the inside"},
	"priority":   {why: "INVITE priority, towards the inside"},
	"user-agent": {why: "the outside endpoint's product, towards the inside (call servers provision by it); scanners are dropped before"},
}

// copyHeaders copies every header named in names from src to dst, if it
// is on the crossing allow list; a name not on the list is not copied.
func copyHeaders(dst interface{ AppendHeader(sip.Header) }, src headerList, names ...string) {
	hs := src.Headers()
	for _, n := range names {
		var buf [32]byte
		if len(n) > len(buf) {
			continue // longer than any name on the list
		}
		rule, ok := crossing[string(lowerASCII(buf[:0], n))]
		if !ok {
			continue
		}
		for _, h := range hs {
			if !nameIs(h.Name(), n) {
				continue
			}
			v := h.Value()
			if rule.clean != nil {
				var keep bool
				if v, keep = rule.clean(v); !keep {
					continue
				}
			}
			dst.AppendHeader(sip.NewHeader(h.Name(), v))
		}
	}
}

// headerList is a SIP message's headers in order (*sip.Request,
// *sip.Response).
type headerList interface{ Headers() []sip.Header }

// firstHeader returns m's first header called name (in any case), or nil.
// sipgo's GetHeader lower-cases each name it compares, an allocation for
// every header whose name it does not know; this compares in place.
func firstHeader(m headerList, name string) sip.Header {
	for _, h := range m.Headers() {
		if nameIs(h.Name(), name) {
			return h
		}
	}
	return nil
}

// allHeaders returns m's headers called name (in any case), in order;
// GetHeaders without its allocations (see firstHeader).
func allHeaders(m headerList, name string) []sip.Header {
	var out []sip.Header
	for _, h := range m.Headers() {
		if nameIs(h.Name(), name) {
			out = append(out, h)
		}
	}
	return out
}

// nameIs reports whether header name n is name, ignoring ASCII case.
func nameIs(n, name string) bool {
	if len(n) != len(name) {
		return false
	}
	for i := 0; i < len(n); i++ {
		if lowerByte(n[i]) != lowerByte(name[i]) {
			return false
		}
	}
	return true
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// lowerASCII appends s lower-cased (ASCII only) to dst.
func lowerASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, lowerByte(s[i]))
	}
	return dst
}

// deltaSeconds keeps the leading delta-seconds of a value and its
// parameters, dropping a comment ("120 (maintenance on cs1)").
func deltaSeconds(v string) (string, bool) {
	v = strings.TrimSpace(v)
	n := 0
	for n < len(v) && v[n] >= '0' && v[n] <= '9' {
		n++
	}
	if n == 0 || n > 10 {
		return "", false
	}
	out := v[:n]
	rest := strings.TrimSpace(v[n:])
	if i := strings.IndexByte(rest, '('); i >= 0 {
		rest = strings.TrimSpace(rest[:i])
	}
	if strings.HasPrefix(rest, ";") && !strings.ContainsAny(rest, "()\"<>@") {
		out += rest
	}
	return out, true
}

// httpDate keeps a Date value only when it is one (RFC 3261 section 20.17).
func httpDate(v string) (string, bool) {
	if _, err := http.ParseTime(strings.TrimSpace(v)); err != nil {
		return "", false
	}
	return strings.TrimSpace(v), true
}

// reasonPhrase is the reason phrase Portico sends for code: the standard
// one, never the far end's, which may name its hosts ("Forwarded to
// 10.1.2.3"). Digits of codes without a standard phrase pick a generic one
// by class.
func reasonPhrase(code int) string {
	if p, ok := reasonPhrases[code]; ok {
		return p
	}
	switch {
	case code < 200:
		return "Session Progress"
	case code < 300:
		return "OK"
	case code < 400:
		return "Redirection"
	case code < 500:
		return "Request Failure"
	case code < 600:
		return "Server Failure"
	}
	return "Global Failure"
}

// reasonPhrases are RFC 3261 section 21's phrases plus the extensions
// Portico relays.
var reasonPhrases = map[int]string{
	100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
	199: "Early Dialog Terminated",
	200: "OK", 202: "Accepted", 204: "No Notification",
	300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
	400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
	405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
	410: "Gone", 412: "Conditional Request Failed", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
	415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
	421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief", 428: "Use Identity Header",
	429: "Provide Referrer Identity", 433: "Anonymity Disallowed", 436: "Bad Identity-Info", 437: "Unsupported Certificate",
	438: "Invalid Identity Header", 439: "First Hop Lacks Outbound Support", 440: "Max-Breadth Exceeded",
	469: "Bad Info Package", 470: "Consent Needed",
	480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
	484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
	489: "Bad Event", 491: "Request Pending", 493: "Undecipherable", 494: "Security Agreement Required",
	500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
	504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large", 580: "Precondition Failure",
	600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable", 607: "Unwanted",
}

// redirectContacts translates the targets of a 3xx from one side into a
// form that names no host of that side: each sip or sips target with a
// user part becomes that user at host (Portico's host on the other side),
// so the caller's new request comes back through Portico, which routes it
// as any other call. Targets without a user part are dropped.
func redirectContacts(res *sip.Response, host string) []sip.Header {
	var out []sip.Header
	for _, h := range allHeaders(res, "Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		u := c.Address
		if (u.Scheme != "sip" && u.Scheme != "sips") || u.User == "" || strings.ContainsAny(u.User, "@:;?") {
			continue
		}
		ch := &sip.ContactHeader{Address: sip.Uri{Scheme: u.Scheme, User: u.User, Host: host}, Params: sip.NewParams()}
		if q, ok := c.Params.Get("q"); ok && isQValue(q) {
			ch.Params.Add("q", q)
		}
		out = append(out, ch)
	}
	return out
}

func isQValue(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// fakeChallenge is a digest challenge shaped like tmpl (the last one the
// inside sent for a REGISTER), with fresh random nonce and opaque values of
// the same length, so that a challenge Portico answers for an unknown user
// cannot be told from the registrar's. Without tmpl it challenges in realm.
func fakeChallenge(tmpl, realm string) string {
	if tmpl == "" {
		return `Digest realm="` + realm + `", nonce="` + randomHex(32) + `", algorithm=MD5`
	}
	var b strings.Builder
	rest := tmpl
	for {
		i := indexParam(rest, "nonce", "opaque")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		eq := strings.IndexByte(rest[i:], '=') + i
		b.WriteString(rest[:eq+1])
		v := rest[eq+1:]
		quoted := strings.HasPrefix(v, `"`)
		end := 0
		if quoted {
			end = strings.IndexByte(v[1:], '"') + 2
			if end < 2 {
				end = len(v)
			}
		} else {
			end = strings.IndexAny(v, ", ")
			if end < 0 {
				end = len(v)
			}
		}
		n := end
		if quoted {
			n -= 2
		}
		old := v[:end]
		if quoted && n > 0 {
			old = v[1 : 1+n]
		}
		if n <= 0 {
			n = 16
		}
		r := randomLike(old, n)
		if quoted {
			r = `"` + r + `"`
		}
		b.WriteString(r)
		rest = v[end:]
	}
	return b.String()
}

// indexParam returns the index of the first of names used as a parameter
// name ("nonce=") in s, or -1.
func indexParam(s string, names ...string) int {
	best := -1
	ls := asciiLower(s) // same length as s, whatever its bytes
	for _, n := range names {
		off := 0
		for {
			i := strings.Index(ls[off:], n)
			if i < 0 {
				break
			}
			i += off
			j := i + len(n)
			for j < len(ls) && ls[j] == ' ' {
				j++
			}
			before := i == 0 || ls[i-1] == ' ' || ls[i-1] == ','
			if before && j < len(ls) && ls[j] == '=' {
				if best < 0 || i < best {
					best = i
				}
				break
			}
			off = i + len(n)
		}
	}
	return best
}

// asciiLower lowers A-Z only, keeping every other byte (and so the
// length and the indexes) as it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// randomLike returns n random characters of the classes tmpl uses (hex
// digits, lower or upper case letters, digits, base64 and URL-safe
// punctuation, trailing '=' padding), so that a made-up nonce looks like
// the registrar's: Kamailio's are base64, others' hex.
func randomLike(tmpl string, n int) string {
	var lower, upper, digit, hexLower, hexUpper bool
	punct := ""
	body := strings.TrimRight(tmpl, "=")
	pad := min(len(tmpl)-len(body), n)
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case 'a' <= c && c <= 'f':
			hexLower = true
		case 'g' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'F':
			hexUpper = true
		case 'G' <= c && c <= 'Z':
			upper = true
		case '0' <= c && c <= '9':
			digit = true
		case strings.IndexByte("+/-_.", c) >= 0 && strings.IndexByte(punct, c) < 0:
			punct += string(c)
		}
	}
	alphabet := ""
	switch {
	case lower:
		alphabet += "abcdefghijklmnopqrstuvwxyz"
	case hexLower:
		alphabet += "abcdef"
	}
	switch {
	case upper:
		alphabet += "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	case hexUpper:
		alphabet += "ABCDEF"
	}
	if digit {
		alphabet += "0123456789"
	}
	if alphabet == "" {
		return randomHex(n)
	}
	alphabet += punct
	b := make([]byte, n)
	rand.Read(b)
	for i := range b[:n-pad] {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	for i := n - pad; i < n; i++ {
		b[i] = '='
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
