package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/portico-edge/portico/internal/config/field"
)

// maxDocument caps the size of a configuration document.
const maxDocument = 1 << 20

// FieldError is one problem in a document, located by field path and, when
// known, by line and column. It is the type every service reports with.
type FieldError = field.Error

// Errors is every problem found in a document.
type Errors = field.Errors

// AsErrors returns the field errors inside err, if it holds any.
func AsErrors(err error) (Errors, bool) { return field.As(err) }

// Parse reads a YAML document strictly, applies defaults and validates it.
// The error, if any, is an Errors listing every problem found.
func Parse(doc []byte) (*Config, error) {
	if len(doc) > maxDocument {
		return nil, Errors{{Reason: fmt.Sprintf("document is %d bytes; the limit is %d", len(doc), maxDocument)}}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&root); err != nil {
		if err.Error() == "EOF" {
			return nil, Errors{{Reason: "document is empty"}}
		}
		return nil, Errors{{Reason: "malformed YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Errors{{Line: extra.Line, Column: extra.Column, Reason: "more than one YAML document; Portico reads exactly one"}}
	}
	body := &root
	if body.Kind == yaml.DocumentNode && len(body.Content) == 1 {
		body = body.Content[0]
	}
	// Every problem is collected before returning: unknown fields and
	// wrong types (checkFields), then the values of whatever decoded.
	var errs Errors
	checkFields(body, reflect.TypeOf(Config{}), "", &errs)
	cfg := Default()
	if err := body.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, append(errs, FieldError{Reason: err.Error()})
		}
		if len(errs) == 0 { // checkFields found none of them; keep yaml's words
			for _, m := range te.Errors {
				errs = append(errs, FieldError{Reason: strings.TrimPrefix(m, "yaml: ")})
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		vs, ok := AsErrors(locate(err, body))
		if !ok {
			return nil, err
		}
		errs = merge(errs, vs)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// merge appends the errors of more whose path errs does not already name
// (a field of the wrong type was left at its default, which may fail
// validation for a reason that only repeats the first).
func merge(errs, more Errors) Errors {
	seen := map[string]bool{}
	for _, e := range errs {
		seen[e.Path] = true
	}
	for _, e := range more {
		if !seen[e.Path] || e.Path == "" {
			errs = append(errs, e)
		}
	}
	return errs
}

var textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

// checkFields walks the YAML tree beside the Go type and reports keys the
// type does not have, and values of the wrong shape, with their position.
func checkFields(n *yaml.Node, t reflect.Type, path string, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			*errs = append(*errs, FieldError{Path: path, Line: n.Line, Column: n.Column, Reason: "expected a single value"})
		} else if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			*errs = append(*errs, FieldError{Path: path, Line: n.Line, Column: n.Column, Reason: fmt.Sprintf("%q: %v", n.Value, err)})
			blank(n)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, FieldError{Path: path, Line: n.Line, Column: n.Column, Reason: "expected a mapping of fields"})
			return
		}
		fields := map[string]reflect.Type{}
		collectFields(t, fields)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, FieldError{Path: p, Line: k.Line, Column: k.Column, Reason: "unknown field" + suggest(k.Value, fields)})
				continue
			}
			if seen[k.Value] {
				*errs = append(*errs, FieldError{Path: p, Line: k.Line, Column: k.Column, Reason: "field given twice"})
				continue
			}
			seen[k.Value] = true
			checkFields(v, ft, p, errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			*errs = append(*errs, FieldError{Path: path, Line: n.Line, Column: n.Column, Reason: "expected a list"})
			return
		}
		for i, c := range n.Content {
			checkFields(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, FieldError{Path: path, Line: n.Line, Column: n.Column, Reason: "expected a mapping"})
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkFields(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), errs)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			*errs = append(*errs, FieldError{Path: path, Line: n.Line, Column: n.Column, Reason: "expected a single value"})
			return
		}
		checkScalar(n, t, path, errs)
	}
}

// checkScalar decodes a scalar into its field's type and reports a value of
// the wrong type with the path yaml's own error lacks.
func checkScalar(n *yaml.Node, t reflect.Type, path string, errs *Errors) {
	if err := n.Decode(reflect.New(t).Interface()); err == nil {
		return
	}
	var want string
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "a whole number"
	case reflect.Float32, reflect.Float64:
		want = "a number"
	case reflect.Bool:
		want = "true or false"
	default:
		want = "a " + t.Kind().String()
	}
	*errs = append(*errs, FieldError{Path: path, Line: n.Line, Column: n.Column, Reason: fmt.Sprintf("%q is not %s", n.Value, want)})
	blank(n)
}

// blank turns a reported value into null, so that decoding the rest of the
// document goes on (a failing UnmarshalText would stop it) and the field
// keeps its default.
func blank(n *yaml.Node) {
	n.Tag, n.Value, n.Style = "!!null", "", 0
}

// collectFields maps YAML names to field types, descending into ",inline" structs.
func collectFields(t reflect.Type, fields map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, fields)
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fields[name] = f.Type
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names a known field close to a misspelt one.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for f := range fields {
		if d := distance(key, f); d < bestD {
			best, bestD = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// locate adds line and column to validation errors whose path names a node.
func locate(err error, body *yaml.Node) error {
	es, ok := AsErrors(err)
	if !ok {
		return err
	}
	for i := range es {
		if n := find(body, es[i].Path); n != nil {
			es[i].Line, es[i].Column = n.Line, n.Column
		}
	}
	return es
}

// Locate fills in the line and column of errors found after parsing (by
// the services building from doc) whose path names a node of doc. It
// changes nothing when doc does not parse.
func Locate(doc []byte, es Errors) Errors {
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil {
		return es
	}
	body := &root
	if body.Kind == yaml.DocumentNode && len(body.Content) == 1 {
		body = body.Content[0]
	}
	for i := range es {
		if es[i].Line == 0 {
			if n := find(body, es[i].Path); n != nil {
				es[i].Line, es[i].Column = n.Line, n.Column
			}
		}
	}
	return es
}

// find returns the value node at a dotted path such as "media.external.port_min"
// or "interfaces.internal.networks[1]".
func find(n *yaml.Node, path string) *yaml.Node {
	if path == "" {
		return n
	}
	for _, part := range strings.Split(path, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			key = part[:i]
			fmt.Sscanf(part[i+1:len(part)-1], "%d", &idx)
		}
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				next = n.Content[j+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return nil
			}
			n = n.Content[idx]
		}
	}
	return n
}

// Marshal writes cfg as YAML.
func Marshal(cfg *Config) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	enc.Close()
	return b.Bytes(), nil
}
