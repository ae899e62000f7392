package ng

import (
	"net/netip"

	"github.com/portico-edge/portico/internal/media"
)

// SectionConfig derives the listener's Config from the document's media
// section (ng_listen, ng_allow, ng_secret); offers take the external
// interface, answers the internal one. Networks that do not parse are left
// out: the section's validation reports them.
func SectionConfig(s media.Section) Config {
	c := Config{Listen: s.NGListen, Interfaces: [2]string{"external", "internal"}, Secret: s.NGSecret}
	for _, n := range s.NGAllow {
		if p, err := netip.ParsePrefix(n); err == nil {
			c.Allow = append(c.Allow, p)
		}
	}
	return c
}
