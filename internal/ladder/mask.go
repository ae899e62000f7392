package ladder

import (
	"bytes"
)

// maskByte overwrites secrets in headers; one byte for one, so lengths
// stay true.
const maskByte = '*'

// keyMask overwrites SDP keys: a base64 character, so that a dissector
// decoding the key (Wireshark's SDP) still reads the line.
const keyMask = 'X'

// secretParams are the auth-params whose values are masked.
var secretParams = map[string]bool{"response": true, "nonce": true, "cnonce": true, "nextnonce": true, "rspauth": true}

// authHeaders are the headers whose credentials are masked.
var authHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "authentication-info": true,
	"www-authenticate": true, "proxy-authenticate": true, "proxy-authentication-info": true,
}

// Mask returns a copy of a SIP message with its secrets overwritten: the
// digest response, nonce, cnonce, nextnonce and rspauth of the
// authentication headers (RFC 3261 section 22, RFC 7616), the whole
// credentials of any scheme but Digest, and the keying material of SDP
// a=crypto inline parameters (RFC 4568 section 9.1) and a=key-mgmt lines
// (RFC 4567). Every masked byte becomes '*' ('X' in SDP keys, which stay
// base64), so the message keeps its length and its Content-Length stays
// true.
func Mask(msg []byte) []byte {
	out := bytes.Clone(msg)
	inBody := false
	var cur string // header name of the line being read (folding)
	rest := out
	first := true
	for len(rest) > 0 {
		var line []byte
		line, rest = cutLine(rest)
		body := bytes.TrimRight(line, "\r")
		switch {
		case first:
			first = false
		case !inBody && len(body) == 0:
			inBody = true
		case inBody:
			maskSDPLine(body)
		default:
			val := body
			if body[0] == ' ' || body[0] == '\t' {
				// a folded continuation of cur
			} else if c := bytes.IndexByte(body, ':'); c > 0 {
				cur = string(bytes.ToLower(bytes.TrimSpace(body[:c])))
				val = body[c+1:]
			} else {
				cur = ""
			}
			if authHeaders[cur] {
				maskCredentials(val)
			}
		}
	}
	return out
}

// maskSDPLine masks the keys of one SDP attribute line in place.
func maskSDPLine(l []byte) {
	switch {
	case bytes.HasPrefix(l, []byte("a=crypto:")):
		// a=crypto:<tag> <suite> inline:<key||salt>[|<lifetime>][|<MKI>:<len>][;inline:...] [<session params>]
		for i := 0; ; {
			j := bytes.Index(l[i:], []byte("inline:"))
			if j < 0 {
				return
			}
			k := i + j + len("inline:")
			for k < len(l) && l[k] != '|' && l[k] != ';' && l[k] != ' ' && l[k] != '\t' {
				l[k] = keyMask
				k++
			}
			i = k
		}
	case bytes.HasPrefix(l, []byte("a=key-mgmt:")):
		// a=key-mgmt:<prtcl-id> <keymgmt-data>
		v := l[len("a=key-mgmt:"):]
		if sp := bytes.IndexByte(v, ' '); sp >= 0 {
			for k := sp + 1; k < len(v); k++ {
				v[k] = keyMask
			}
		}
	}
}

// maskCredentials masks the secrets of one authentication header value
// (or a folded part of it) in place.
func maskCredentials(v []byte) {
	i := 0
	skip := func() {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == ',') {
			i++
		}
	}
	for {
		skip()
		if i >= len(v) {
			return
		}
		start := i
		for i < len(v) && v[i] != '=' && v[i] != ' ' && v[i] != '\t' && v[i] != ',' {
			i++
		}
		name := bytes.ToLower(v[start:i])
		j := i
		for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
			j++
		}
		if j >= len(v) || v[j] != '=' {
			// A scheme. Anything but Digest carries its credentials
			// as one token (Basic, Bearer): mask the rest.
			if len(name) > 0 && !bytes.Equal(name, []byte("digest")) && j < len(v) && !isParamStart(v[j:]) {
				for k := j; k < len(v); k++ {
					if v[k] != ' ' && v[k] != '\t' {
						v[k] = maskByte
					}
				}
				return
			}
			continue
		}
		i = j + 1
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		secret := secretParams[string(name)]
		if i < len(v) && v[i] == '"' {
			i++
			for i < len(v) && v[i] != '"' {
				if v[i] == '\\' && i+1 < len(v) {
					if secret {
						v[i] = maskByte
					}
					i++
				}
				if secret {
					v[i] = maskByte
				}
				i++
			}
			if i < len(v) {
				i++ // closing quote
			}
		} else {
			for i < len(v) && v[i] != ',' && v[i] != ' ' && v[i] != '\t' {
				if secret {
					v[i] = maskByte
				}
				i++
			}
		}
	}
}

// isParamStart tells whether v starts with "token=" (an auth-param after
// a scheme) rather than an opaque credential.
func isParamStart(v []byte) bool {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '=':
			// base64 padding ("dXNlcg==", "YWI=") is not a parameter
			return i > 0 && i+1 < len(v) && v[i+1] != '=' && v[i+1] != ' ' && v[i+1] != ','
		case c == ' ' || c == '\t' || c == ',' || c == '"':
			return false
		}
	}
	return false
}
