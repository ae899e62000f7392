package policy

import "github.com/portico-edge/portico/internal/config/field"

// FieldError is one invalid field, by path ("policy.rules[2].action") (the
// shared configuration field error).
type FieldError = field.Error

// ConfigError lists every invalid field.
type ConfigError = field.Errors
