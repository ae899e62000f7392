package api

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/portico-edge/portico/internal/config"
)

// Mask stands for a stored secret in configuration documents read back.
// Secrets are write-only: every read (GET /api/v1/config, its versions,
// `portico config export`) shows Mask in their place, for every role, and a
// document written back with Mask where a secret was keeps the stored one.
const Mask = "********"

// secretField is a configuration field that holds a secret: the whole
// value, or only the password inside a PostgreSQL connection string. A
// path element "*" stands for every item of a list; a masked item keeps
// the secret stored at the same position.
type secretField struct {
	path []string
	dsn  bool
}

// secretFields are the document's secrets. The DSN keeps its user, host
// and database readable; only its password is masked.
var secretFields = []secretField{
	{path: []string{"turn", "rest_secret"}},
	{path: []string{"store", "dsn"}, dsn: true},
	{path: []string{"tunnel", "enrollment_token"}},
	{path: []string{"snmp", "communities", "*", "community"}},
	{path: []string{"snmp", "users", "*", "auth_key"}},
	{path: []string{"snmp", "users", "*", "priv_key"}},
	{path: []string{"snmp", "traps", "*", "community"}},
	{path: []string{"ha", "sync", "secret"}},
}

// MaskSecrets returns doc with every secret replaced by Mask. A document
// without secrets comes back unchanged, byte for byte; one that is not YAML
// comes back as a notice (it cannot be masked, so it is not shown).
func MaskSecrets(doc []byte) []byte {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return []byte("# this version is not valid YAML and is not shown: it may hold secrets\n")
	}
	changed := false
	for _, f := range concreteFields(&root) {
		n := lookup(&root, f.path)
		if n == nil || n.Value == "" {
			continue
		}
		masked := Mask
		if f.dsn {
			masked = maskDSN(n.Value)
		}
		if masked != n.Value {
			n.Value, n.Style, n.Tag = masked, 0, "!!str"
			changed = true
		}
	}
	if !changed {
		return doc
	}
	return encodeYAML(&root, doc)
}

// KeepSecrets puts the secrets of stored (the active document) back where
// doc carries Mask. A Mask with no stored secret behind it is an error
// naming the field (config.Errors).
func KeepSecrets(doc, stored []byte) ([]byte, error) {
	if !bytes.Contains(doc, []byte(Mask)) {
		return doc, nil
	}
	var root, old yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return doc, nil // the parser reports it with its line and column
	}
	_ = yaml.Unmarshal(stored, &old) // an unreadable stored version has no secrets to keep
	changed := false
	for _, f := range concreteFields(&root) {
		n := lookup(&root, f.path)
		if n == nil || !strings.Contains(n.Value, Mask) {
			continue
		}
		var prev string
		if o := lookup(&old, f.path); o != nil {
			prev = o.Value
		}
		name := strings.Join(f.path, ".")
		if !f.dsn {
			if n.Value != Mask {
				continue
			}
			if prev == "" {
				return nil, config.Errors{{Path: name, Reason: Mask + " stands for the stored secret, but none is stored; give the secret itself"}}
			}
			n.Value, n.Style = prev, 0
			changed = true
			continue
		}
		pw, ok := dsnPassword(prev)
		if !ok {
			return nil, config.Errors{{Path: name, Reason: "the password " + Mask + " stands for the stored one, but the stored DSN has none; give the password itself"}}
		}
		v, ok := setDSNPassword(n.Value, pw)
		if !ok {
			continue
		}
		n.Value, n.Style = v, 0
		changed = true
	}
	if !changed {
		return doc, nil
	}
	return encodeYAML(&root, doc), nil
}

// concreteFields are the secret fields of root with each "*" replaced by
// the index of every item its list has.
func concreteFields(root *yaml.Node) []secretField {
	var out []secretField
	for _, f := range secretFields {
		paths := [][]string{nil}
		for _, key := range f.path {
			var next [][]string
			for _, p := range paths {
				if key != "*" {
					next = append(next, append(p[:len(p):len(p)], key))
					continue
				}
				if n := node(root, p); n != nil && n.Kind == yaml.SequenceNode {
					for i := range n.Content {
						next = append(next, append(p[:len(p):len(p)], strconv.Itoa(i)))
					}
				}
			}
			paths = next
		}
		for _, p := range paths {
			out = append(out, secretField{path: p, dsn: f.dsn})
		}
	}
	return out
}

// lookup finds the scalar at path in a document node, or nil.
func lookup(root *yaml.Node, path []string) *yaml.Node {
	n := node(root, path)
	if n == nil || n.Kind != yaml.ScalarNode {
		return nil
	}
	return n
}

// node finds the node at path (mapping keys, and list indexes in
// decimal), or nil.
func node(root *yaml.Node, path []string) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	for _, key := range path {
		if n.Kind == yaml.SequenceNode {
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
			continue
		}
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

func encodeYAML(root *yaml.Node, orig []byte) []byte {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return []byte("# this version could not be masked and is not shown: it may hold secrets\n")
	}
	enc.Close()
	return b.Bytes()
}

// kvPassword finds password=... in a key=value connection string. The
// value runs to the next space outside quotes, quoted parts and all
// (password=' '0 is one token: masking only the quoted part would show
// the 0), and an unterminated quote runs to the next space.
var kvPassword = regexp.MustCompile(`(^|\s)password\s*=\s*((?:'(?:[^'\\]|\\.)*'|[^\s'])+|\S+)`)

// passwordSpan finds the password in a connection string as raw text: the
// userinfo password or the password query parameter of a URL, or the
// password=... of a key=value string. Working on the text, never a
// re-serialised URL, keeps everything else exactly as written.
func passwordSpan(dsn string) (start, end int, ok bool) {
	i := strings.Index(dsn, "://")
	if i < 0 {
		m := kvPassword.FindStringSubmatchIndex(dsn)
		if m == nil {
			return 0, 0, false
		}
		return m[4], m[5], true
	}
	auth, authEnd := i+3, len(dsn)
	if j := strings.IndexAny(dsn[auth:], "/?#"); j >= 0 {
		authEnd = auth + j
	}
	if at := strings.LastIndex(dsn[auth:authEnd], "@"); at >= 0 {
		if c := strings.Index(dsn[auth:auth+at], ":"); c >= 0 {
			return auth + c + 1, auth + at, true
		}
	}
	q := strings.Index(dsn[authEnd:], "?")
	if q < 0 {
		return 0, 0, false
	}
	pos, qEnd := authEnd+q+1, len(dsn)
	if h := strings.Index(dsn[pos:], "#"); h >= 0 {
		qEnd = pos + h
	}
	for pos <= qEnd {
		segEnd := qEnd
		if amp := strings.Index(dsn[pos:qEnd], "&"); amp >= 0 {
			segEnd = pos + amp
		}
		if strings.HasPrefix(dsn[pos:segEnd], "password=") {
			return pos + len("password="), segEnd, true
		}
		pos = segEnd + 1
	}
	return 0, 0, false
}

// maskDSN hides the password of a URL or key=value connection string.
func maskDSN(dsn string) string {
	s, e, ok := passwordSpan(dsn)
	if !ok {
		return dsn
	}
	return dsn[:s] + Mask + dsn[e:]
}

// dsnPassword returns the password a connection string carries, as written.
func dsnPassword(dsn string) (string, bool) {
	s, e, ok := passwordSpan(dsn)
	if !ok {
		return "", false
	}
	return dsn[s:e], true
}

// setDSNPassword puts pw where dsn carries Mask as its password.
func setDSNPassword(dsn, pw string) (string, bool) {
	s, e, ok := passwordSpan(dsn)
	if !ok || dsn[s:e] != Mask {
		return "", false
	}
	return dsn[:s] + pw + dsn[e:], true
}
