package media

import (
	"testing"

	"github.com/portico-edge/portico/internal/config/field"
)

func TestSection(t *testing.T) {
	if err := DefaultSection().Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	s := DefaultSection()
	s.Internal = field.PortRange{Min: 44000, Max: 50000}
	s.Workers = 300
	es, ok := field.As(s.Validate())
	if !ok || len(es) != 2 || es[0].Path != "media.internal" || es[1].Path != "media.workers" {
		t.Errorf("Validate = %v, want media.internal and media.workers", es)
	}
	c, err := DefaultSection().Config(Env{External: "192.0.2.1", PublicAddress: "198.51.100.1", Internal: "10.0.0.1"})
	if err != nil || c.Interfaces["external"].Advertised.String() != "198.51.100.1" || c.Latching != LatchNAT || c.SocketBuffer != 4096<<10 {
		t.Errorf("Config = %+v, %v", c, err)
	}
	s = DefaultSection()
	s.MultiplexPort = 40010
	if es, ok := field.As(s.Validate()); !ok || len(es) != 1 || es[0].Path != "media.multiplex_port" {
		t.Errorf("multiplex_port inside the external range: %v", es)
	}
	s.MultiplexPort = 39000
	if c, err := s.Config(Env{External: "192.0.2.1", Internal: "10.0.0.1"}); s.Validate() != nil || err != nil || c.Interfaces["external"].MultiplexPort != 39000 {
		t.Errorf("multiplex_port 39000: %v, %v", s.Validate(), err)
	}
	_, err = DefaultSection().Config(Env{External: "nowhere", Internal: "10.0.0.1"})
	if es, ok := field.As(err); !ok || es[0].Path != "interfaces.external.address" {
		t.Errorf("Config with a bad address = %v", err)
	}
}
