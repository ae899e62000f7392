package accessproxy

import "github.com/portico-edge/portico/internal/config/field"

// Section is the access_proxy section of Portico's configuration document
// (docs/access-proxy.md): whether the proxy runs, and its Config inline.
type Section struct {
	// Enabled turns the access proxy on. Default false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	Config  `yaml:",inline" json:",inline"`
}

// DefaultSection is the section with its defaults: off, on 127.0.0.1:8443.
func DefaultSection() Section { return Section{Config: Config{Listen: "127.0.0.1:8443"}} }

// Validate checks what the section can check alone; routes and handlers
// are checked by New, which knows the handlers the node offers.
func (s Section) Validate() error {
	var es field.Errors
	if s.Enabled && s.Listen == "" {
		es.Add("access_proxy.listen", "required when the access proxy is enabled")
	}
	return es.Err()
}
