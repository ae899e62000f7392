package guard

import (
	"errors"
	"strings"
)

var (
	// ErrAllowed refuses a manual block of a source on the allow list.
	ErrAllowed = errors.New("guard: source is on the allow list")
	// ErrNotBlocked is returned by Unblock for a source that is not blocked.
	ErrNotBlocked = errors.New("guard: source is not blocked")
	// ErrNoKernelSet means the kernel set is required (kernel: on) but
	// could not be set up.
	ErrNoKernelSet = errors.New("guard: kernel set unavailable")
)

// FieldError is one invalid field, by path ("guard.limits.register.count").
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
