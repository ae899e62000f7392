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

// nodeMark separates the importing node's name from the file's path.
const nodeMark = "#node="

// NodeFileAuthor is the author of a version the node called node imported
// from the file at path (a cluster's nodes share one history; the import
// rule tells each node's own imports apart). An empty node is FileAuthor.
func NodeFileAuthor(path, node string) string {
	if node == "" {
		return FileAuthor(path)
	}
	return filePrefix + path + nodeMark + node
}

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
	// Node is the node that imported the file (source file only; empty
	// for an import that did not name its node).
	Node string `json:"node,omitempty"`
}

// OriginOf reads the origin from a version's author.
func OriginOf(author string) Origin {
	switch {
	case strings.HasPrefix(author, filePrefix):
		file, node, _ := strings.Cut(strings.TrimPrefix(author, filePrefix), nodeMark)
		return Origin{Source: SourceFile, File: file, Author: author, Node: node}
	case author == DefaultsAuthor:
		return Origin{Source: SourceDefaults, Author: author}
	}
	return Origin{Source: SourceAPI, Author: author}
}
