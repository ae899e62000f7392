package guard

import (
	"errors"

	"github.com/portico-edge/portico/internal/config/field"
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

// FieldError is one invalid field, by path ("guard.limits.register.count")
// (the shared configuration field error).
type FieldError = field.Error

// ConfigError lists every invalid field.
type ConfigError = field.Errors
