package policy

import "strings"

// FieldError is one invalid field, by path ("policy.rules[2].action").
type FieldError struct {
	Path   string
	Reason string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Reason }

// ConfigError lists every invalid field.
type ConfigError []FieldError

func (e ConfigError) Error() string {
	s := make([]string, len(e))
	for i, f := range e {
		s[i] = f.Error()
	}
	return strings.Join(s, "; ")
}
