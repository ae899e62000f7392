// Package bencode encodes and decodes bencoding, the serialisation used by
// BitTorrent (BEP 3, "The BitTorrent Protocol Specification", section
// bencoding) and by rtpengine's "ng" control protocol.
//
// Values map to Go as: byte string ↔ string, integer ↔ int64, list ↔ []any,
// dictionary ↔ map[string]any. Decoding never panics, caps nesting depth and
// checks every length against the input.
package bencode

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// MaxDepth caps list/dictionary nesting.
const MaxDepth = 64

// Errors returned by Parse.
var (
	ErrSyntax   = errors.New("bencode: syntax error")
	ErrDepth    = errors.New("bencode: nesting too deep")
	ErrTrailing = errors.New("bencode: data after value")
)

// Parse decodes exactly one value from b.
func Parse(b []byte) (any, error) {
	v, n, err := decode(b, 0)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, fmt.Errorf("%w at offset %d", ErrTrailing, n)
	}
	return v, nil
}

// ParsePrefix decodes one value at the start of b and returns the bytes used.
func ParsePrefix(b []byte) (any, int, error) { return decode(b, 0) }

func decode(b []byte, depth int) (any, int, error) {
	if depth > MaxDepth {
		return nil, 0, ErrDepth
	}
	if len(b) == 0 {
		return nil, 0, fmt.Errorf("%w: unexpected end", ErrSyntax)
	}
	switch c := b[0]; {
	case c == 'i':
		end := indexByte(b, 'e', 1)
		if end < 0 || end-1 > 20 {
			return nil, 0, fmt.Errorf("%w: bad integer", ErrSyntax)
		}
		s := string(b[1:end])
		if s == "" || s == "-0" || (len(s) > 1 && s[0] == '0') || (len(s) > 2 && s[:2] == "-0") {
			return nil, 0, fmt.Errorf("%w: bad integer %q", ErrSyntax, s)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: bad integer %q", ErrSyntax, s)
		}
		return n, end + 1, nil
	case c >= '0' && c <= '9':
		colon := indexByte(b, ':', 0)
		if colon < 0 || colon > 10 {
			return nil, 0, fmt.Errorf("%w: bad string length", ErrSyntax)
		}
		l, err := strconv.Atoi(string(b[:colon]))
		if err != nil || (colon > 1 && b[0] == '0') {
			return nil, 0, fmt.Errorf("%w: bad string length", ErrSyntax)
		}
		if l > len(b)-colon-1 {
			return nil, 0, fmt.Errorf("%w: string of %d bytes exceeds input", ErrSyntax, l)
		}
		return string(b[colon+1 : colon+1+l]), colon + 1 + l, nil
	case c == 'l':
		list := []any{}
		i := 1
		for {
			if i >= len(b) {
				return nil, 0, fmt.Errorf("%w: unterminated list", ErrSyntax)
			}
			if b[i] == 'e' {
				return list, i + 1, nil
			}
			v, n, err := decode(b[i:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			list = append(list, v)
			i += n
		}
	case c == 'd':
		dict := map[string]any{}
		i := 1
		for {
			if i >= len(b) {
				return nil, 0, fmt.Errorf("%w: unterminated dictionary", ErrSyntax)
			}
			if b[i] == 'e' {
				return dict, i + 1, nil
			}
			k, n, err := decode(b[i:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			key, ok := k.(string)
			if !ok {
				return nil, 0, fmt.Errorf("%w: dictionary key is not a string", ErrSyntax)
			}
			i += n
			v, n, err := decode(b[i:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			dict[key] = v
			i += n
		}
	}
	return nil, 0, fmt.Errorf("%w: unexpected byte %q", ErrSyntax, b[0])
}

func indexByte(b []byte, c byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// Append encodes v after dst. Accepted types: string, []byte, int, int64,
// uint64, bool (as 0/1), []any, []string, map[string]any.
// Dictionary keys are written in sorted order as the specification requires.
func Append(dst []byte, v any) ([]byte, error) {
	return appendDepth(dst, v, 0)
}

func appendDepth(dst []byte, v any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, ErrDepth
	}
	var err error
	switch x := v.(type) {
	case string:
		dst = strconv.AppendInt(dst, int64(len(x)), 10)
		dst = append(dst, ':')
		dst = append(dst, x...)
	case []byte:
		dst = strconv.AppendInt(dst, int64(len(x)), 10)
		dst = append(dst, ':')
		dst = append(dst, x...)
	case int:
		dst = append(strconv.AppendInt(append(dst, 'i'), int64(x), 10), 'e')
	case int64:
		dst = append(strconv.AppendInt(append(dst, 'i'), x, 10), 'e')
	case uint64:
		dst = append(strconv.AppendUint(append(dst, 'i'), x, 10), 'e')
	case bool:
		n := int64(0)
		if x {
			n = 1
		}
		dst = append(strconv.AppendInt(append(dst, 'i'), n, 10), 'e')
	case []any:
		dst = append(dst, 'l')
		for _, e := range x {
			if dst, err = appendDepth(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		dst = append(dst, 'e')
	case []string:
		dst = append(dst, 'l')
		for _, e := range x {
			dst, _ = appendDepth(dst, e, depth+1)
		}
		dst = append(dst, 'e')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, 'd')
		for _, k := range keys {
			dst, _ = appendDepth(dst, k, depth+1)
			if dst, err = appendDepth(dst, x[k], depth+1); err != nil {
				return dst, err
			}
		}
		dst = append(dst, 'e')
	default:
		return dst, fmt.Errorf("bencode: cannot encode %T", v)
	}
	return dst, nil
}
