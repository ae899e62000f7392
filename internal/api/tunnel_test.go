package api

import (
	"strings"
	"testing"
)

// TestTunnelTokenMasked: an enrollment token in the document is a secret.
func TestTunnelTokenMasked(t *testing.T) {
	doc := "version: 1\ntunnel:\n  enabled: true\n  role: client\n  enrollment_token: pt1.s3cret\n"
	got := string(MaskSecrets([]byte(doc)))
	if strings.Contains(got, "s3cret") || !strings.Contains(got, Mask) {
		t.Fatalf("masked document:\n%s", got)
	}
}
