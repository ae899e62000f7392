package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// maxPattern caps a pattern's length (and so a regular expression's size).
const maxPattern = 256

// pattern matches a callee's user part.
type pattern struct {
	kind   byte // 'r' range, 'a' alias, 'g' glob, 'x' regexp
	lo, hi string
	text   string
	re     *regexp.Regexp
}

// parsePattern reads one destination pattern (see the package comment).
func parsePattern(s string) (pattern, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return pattern{}, fmt.Errorf("empty pattern")
	case len(s) > maxPattern:
		return pattern{}, fmt.Errorf("pattern longer than %d characters", maxPattern)
	case strings.HasPrefix(s, "re:"):
		re, err := regexp.Compile(s[3:])
		if err != nil {
			return pattern{}, fmt.Errorf("%q: %v", s, err)
		}
		return pattern{kind: 'x', text: s, re: re}, nil
	case strings.ContainsAny(s, "*?"):
		return pattern{kind: 'g', text: strings.ToLower(s)}, nil
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok && digits(lo) && digits(hi) {
		if len(lo) != len(hi) || lo > hi {
			return pattern{}, fmt.Errorf("%q is not a range like 1000-1999 (equal lengths, low first)", s)
		}
		return pattern{kind: 'r', lo: lo, hi: hi, text: s}, nil
	}
	if strings.ContainsAny(s, " \t\r\n@;<>\"") {
		return pattern{}, fmt.Errorf("%q: a destination is the user part of a URI", s)
	}
	if digits(s) {
		return pattern{kind: 'r', lo: s, hi: s, text: s}, nil
	}
	return pattern{kind: 'a', text: strings.ToLower(s)}, nil
}

// match reports whether user matches, with the regular expression's
// submatch indexes for a rewrite.
func (p *pattern) match(user string) (bool, []int) {
	switch p.kind {
	case 'r':
		return len(user) == len(p.lo) && digits(user) && user >= p.lo && user <= p.hi, nil
	case 'a':
		return strings.EqualFold(user, p.text), nil
	case 'g':
		return glob(p.text, strings.ToLower(user)), nil
	case 'x':
		m := p.re.FindStringSubmatchIndex(user)
		return m != nil, m
	}
	return false, nil
}

// glob matches s against a pattern of literal bytes, '?' (one byte) and
// '*' (any run), iteratively (no backtracking blow-up).
func glob(pat, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pat) && pat[pi] == '*': // before the literal case: a '*' in s is no match for it
			star, mark = pi, si
			pi++
		case pi < len(pat) && (pat[pi] == '?' || pat[pi] == s[si]):
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi] == '*' {
		pi++
	}
	return pi == len(pat)
}

func digits(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
