package config

import "strings"

// Authors of the versions Portico stores itself. An API edit's author is
// the user (or token owner) who made it; user names cannot hold ':'.
const (
	// DefaultsAuthor wrote the defaults stored at a first start without a file.
	DefaultsAuthor = "portico"
	filePrefix     = "file:"
)

// FileAuthor is the author of a version imported from the file at path.
func FileAuthor(path string) string { return filePrefix + path }

// Sources of a stored version, as OriginOf reports them.
const (
	SourceFile     = "file"     // imported from a file (serve --config, SIGHUP, config import)
	SourceAPI      = "api"      // written through the REST API (or the console)
	SourceDefaults = "defaults" // the defaults stored at a first start
)

// Origin says where a stored version came from.
type Origin struct {
	// Source is file, api or defaults.
	Source string `json:"source"`
	// File is the imported file's path (source file only).
	File string `json:"file,omitempty"`
	// Author is who wrote it: the API user, or the file's author mark.
	Author string `json:"author"`
}

// OriginOf reads the origin from a version's author.
func OriginOf(author string) Origin {
	switch {
	case strings.HasPrefix(author, filePrefix):
		return Origin{Source: SourceFile, File: strings.TrimPrefix(author, filePrefix), Author: author}
	case author == DefaultsAuthor:
		return Origin{Source: SourceDefaults, Author: author}
	}
	return Origin{Source: SourceAPI, Author: author}
}
