package q931

import "errors"

// Sentinel errors.
var (
	ErrShort   = errors.New("q931: truncated input")
	ErrTPKT    = errors.New("q931: bad TPKT header")
	ErrTooLong = errors.New("q931: too long")
	ErrFormat  = errors.New("q931: malformed message")
	ErrNoIE    = errors.New("q931: information element absent")
)
