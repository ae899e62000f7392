package asn1per

import (
	"errors"
	"strings"
)

// Sentinel errors. Decode errors are wrapped in a *FieldError naming the
// field path; use errors.Is to test for these.
var (
	ErrTruncated   = errors.New("asn1per: truncated input")
	ErrConstraint  = errors.New("asn1per: value outside its constraint")
	ErrTooLong     = errors.New("asn1per: length exceeds decoder limit")
	ErrTooDeep     = errors.New("asn1per: nesting too deep")
	ErrUnsupported = errors.New("asn1per: encoding not supported")
	ErrAlphabet    = errors.New("asn1per: character outside permitted alphabet")
	ErrMissing     = errors.New("asn1per: selected or present value is nil")
	// ErrPresence: an OPTIONAL value is set but its HasX presence flag is
	// false, so encoding would silently drop it.
	ErrPresence = errors.New("asn1per: value set but its presence flag is false")
)

// FieldError reports an error together with the path of ASN.1 fields
// (outermost first) at which it happened.
type FieldError struct {
	Path []string
	Err  error
}

func (e *FieldError) Error() string {
	return "asn1per: " + strings.Join(e.Path, ".") + ": " + strings.TrimPrefix(e.Err.Error(), "asn1per: ")
}

func (e *FieldError) Unwrap() error { return e.Err }

// Wrap prefixes err's field path with field. It returns nil for a nil err.
// Generated code calls it on the error path only, so a successful decode
// costs nothing for path tracking.
func Wrap(err error, field string) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		fe.Path = append([]string{field}, fe.Path...)
		return fe
	}
	return &FieldError{Path: []string{field}, Err: err}
}
