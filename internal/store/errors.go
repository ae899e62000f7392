package store

import "errors"

// Sentinel errors; implementations wrap them with context.
var (
	ErrNotFound    = errors.New("store: not found")
	ErrExists      = errors.New("store: already exists")
	ErrConflict    = errors.New("store: version conflict")
	ErrUnavailable = errors.New("store: database unavailable")
	ErrLeaseHeld   = errors.New("store: another node runs on this store")
)
