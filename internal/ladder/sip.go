package ladder

import (
	"bytes"
	"strings"
)

// maxLine caps the start line kept in a summary.
const maxLine = 200

// headerValue returns the value of the first header named name (or its
// compact form, when not empty) in a SIP message's header section, with
// surrounding white space removed; nil when absent.
func headerValue(msg []byte, name, compact string) []byte {
	head := headerSection(msg)
	first := true
	for len(head) > 0 {
		var line []byte
		line, head = cutLine(head)
		if first { // the start line
			first = false
			continue
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			continue
		}
		n := bytes.TrimSpace(line[:c])
		if bytes.EqualFold(n, []byte(name)) || (compact != "" && bytes.EqualFold(n, []byte(compact))) {
			return bytes.TrimSpace(line[c+1:])
		}
	}
	return nil
}

// cutLine splits b after its first '\n': the line (without it) and the rest.
func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// headerSection returns the start line and headers of msg, without the
// blank line and body.
func headerSection(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i]
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return msg[:i]
	}
	return msg
}

// startLine returns msg's first line without its line end.
func startLine(msg []byte) []byte {
	if i := bytes.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return bytes.TrimRight(msg, "\r")
}

// isSIP tells whether msg starts like a SIP request or response.
func isSIP(msg []byte) bool {
	l := startLine(msg)
	return bytes.HasPrefix(l, []byte("SIP/2.0 ")) || bytes.HasSuffix(l, []byte(" SIP/2.0"))
}

// CallID returns the Call-ID of a SIP message, or "" when it has none.
func CallID(msg []byte) string {
	v := headerValue(msg, "Call-ID", "i")
	if len(v) > 256 {
		return ""
	}
	return string(v)
}

// Summary is a one-line description of a SIP message: "INVITE
// sip:1001@example.com" for a request, "180 Ringing" for a response.
// It is "" for anything that is not SIP.
func Summary(msg []byte) string {
	if !isSIP(msg) {
		return ""
	}
	l := startLine(msg)
	var s string
	if rest, ok := bytes.CutPrefix(l, []byte("SIP/2.0 ")); ok {
		s = string(rest)
	} else {
		s = string(bytes.TrimSuffix(l, []byte(" SIP/2.0")))
	}
	return clean(s, maxLine)
}

// CSeqMethod returns the method named by a SIP message's CSeq header.
func CSeqMethod(msg []byte) string {
	f := strings.Fields(string(headerValue(msg, "CSeq", "")))
	if len(f) != 2 {
		return ""
	}
	return clean(f[1], 32)
}

// startsDialog tells whether msg is an INVITE outside any dialog (no To
// tag): the first message of a call.
func startsDialog(msg []byte) bool {
	if !bytes.HasPrefix(msg, []byte("INVITE ")) || !isSIP(msg) {
		return false
	}
	to := headerValue(msg, "To", "t")
	return to != nil && !bytes.Contains(bytes.ToLower(to), []byte(";tag="))
}

// clean replaces control characters and invalid UTF-8 with '?' and
// caps s at n bytes, so a summary is one printable line.
func clean(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
