package accessproxy

import (
	"testing"

	"github.com/portico-edge/portico/internal/config/field"
)

func TestSection(t *testing.T) {
	s := DefaultSection()
	s.Enabled = true
	if err := s.Validate(); err != nil {
		t.Fatalf("defaults, enabled: %v", err)
	}
	s.Listen = ""
	if es, ok := field.As(s.Validate()); !ok || es[0].Path != "access_proxy.listen" {
		t.Errorf("enabled without listen: %v", es)
	}
	s.Enabled = false
	if err := s.Validate(); err != nil {
		t.Errorf("disabled without listen: %v", err)
	}
}
