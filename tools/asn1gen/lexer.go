package main

import (
	"fmt"
	"strings"
	"unicode"
)

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString
	tPunct
)

type token struct {
	kind tokKind
	text string
	line int
}

// lex splits an ASN.1 module into tokens, dropping comments (X.680 §12.6:
// "--" to the next "--" or end of line, and /* */).
func lex(src string) ([]token, error) {
	var toks []token
	line := 1
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case strings.HasPrefix(src[i:], "--"):
			i += 2
			for i < len(src) && src[i] != '\n' {
				if strings.HasPrefix(src[i:], "--") {
					i += 2
					break
				}
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += end + 4
		case c == '"':
			j := i + 1
			var sb strings.Builder
			for {
				if j >= len(src) {
					return nil, fmt.Errorf("line %d: unterminated string", line)
				}
				if src[j] == '"' {
					if j+1 < len(src) && src[j+1] == '"' {
						sb.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				if src[j] == '\n' {
					line++
				}
				sb.WriteByte(src[j])
				j++
			}
			toks = append(toks, token{tString, sb.String(), line})
			i = j + 1
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			toks = append(toks, token{tNumber, src[i:j], line})
			i = j
		case c == '&' || unicode.IsLetter(rune(c)):
			j := i + 1
			for j < len(src) {
				d := src[j]
				if unicode.IsLetter(rune(d)) || d >= '0' && d <= '9' {
					j++
					continue
				}
				// a hyphen belongs to the name unless followed by another
				// hyphen (a comment) or ending it
				if d == '-' && j+1 < len(src) && src[j+1] != '-' && (unicode.IsLetter(rune(src[j+1])) || src[j+1] >= '0' && src[j+1] <= '9') {
					j++
					continue
				}
				break
			}
			toks = append(toks, token{tIdent, src[i:j], line})
			i = j
		default:
			for _, p := range []string{"::=", "...", "..", "[[", "]]"} {
				if strings.HasPrefix(src[i:], p) {
					toks = append(toks, token{tPunct, p, line})
					i += len(p)
					goto next
				}
			}
			toks = append(toks, token{tPunct, string(c), line})
			i++
		next:
		}
	}
	toks = append(toks, token{tEOF, "", line})
	return toks, nil
}
