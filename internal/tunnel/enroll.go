package tunnel

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// A token is "pt1.<secret>.<server fingerprint>": the secret is 24 random
// bytes (base64url), and the fingerprint lets the client check the server's
// certificate before it trusts anything the server says.
const tokenPrefix = "pt1."

func newTokenSecret() (secret, hash string, err error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("tunnel: token: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(b[:])
	return secret, hashSecret(secret), nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// parseToken splits a token into its secret and the server fingerprint.
func parseToken(tok string) (secret, serverFP string, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(tok), tokenPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: no %q prefix", ErrToken, tokenPrefix)
	}
	secret, serverFP, ok = strings.Cut(rest, ".")
	if !ok || len(secret) != 32 || len(serverFP) != 64 {
		return "", "", fmt.Errorf("%w: malformed", ErrToken)
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", fmt.Errorf("%w: malformed secret", ErrToken)
	}
	if _, err := hex.DecodeString(serverFP); err != nil {
		return "", "", fmt.Errorf("%w: malformed fingerprint", ErrToken)
	}
	return secret, strings.ToLower(serverFP), nil
}

func equalHex(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
