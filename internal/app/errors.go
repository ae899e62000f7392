package app

import "errors"

// ErrImportRefused means a configuration file was not imported because a
// newer API edit is the active version (the import rule, importfile.go);
// the running configuration stays.
var ErrImportRefused = errors.New("app: configuration file import refused")
