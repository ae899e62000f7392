// Package field is the one typed error for configuration problems: a field
// path (as written in the YAML document, "access_proxy.routes[0].action"),
// where it sits in the document when known, and the reason.
//
// Every service validates its own section and returns Errors; the
// configuration package adds line and column, and the CLI, the REST API
// (422 and POST /api/v1/config/validate) and the logs show them as they
// are. It imports only the standard library, so any service can use it.
package field

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem in a configuration document.
type Error struct {
	Path   string `json:"path"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Reason string `json:"reason"`
}

func (e Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
	} else {
		b.WriteString("document")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d, column %d)", e.Line, e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Errors is every problem found, in the order found.
type Errors []Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Add appends a problem at path.
func (es *Errors) Add(path, format string, args ...any) {
	*es = append(*es, Error{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// Err returns es as an error, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// As returns the field errors inside err (an Errors or a single Error,
// possibly wrapped), if it holds any.
func As(err error) (Errors, bool) {
	var es Errors
	if errors.As(err, &es) {
		return es, true
	}
	var e Error
	if errors.As(err, &e) {
		return Errors{e}, true
	}
	return nil, false
}
