package tunnel

import (
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
	"gopkg.in/yaml.v3"
)

func TestSection(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"off", "enabled: false\nrole: nonsense\n", ""},
		{"server", "enabled: true\nrole: server\nlisten: 0.0.0.0:4443\nservices:\n- {name: web, proto: tcp, listen: 127.0.0.1:8080}\n", ""},
		{"client", "enabled: true\nrole: client\nserver: dmz:4443\nkeep_alive: 300ms\nservices:\n- {name: web, proto: tcp, target: 10.0.0.5:443}\n", ""},
		{"server without listen", "enabled: true\nrole: server\n", "tunnel.listen: required"},
		{"token on a server", "enabled: true\nrole: server\nlisten: :4443\nenrollment_token: x\n", "tunnel.enrollment_token: only a client"},
		{"bad token", "enabled: true\nrole: client\nserver: h:1\nenrollment_token: x\n", "tunnel.enrollment_token: not a token"},
		{"datagram connections", "enabled: true\nrole: server\nlisten: :4443\ndatagram_connections: 99\n", "tunnel.datagram_connections: 99 is not 1-16"},
		{"bad service", "enabled: true\nrole: client\nserver: h:1\nservices:\n- {name: web, proto: icmp, target: h:1}\n", "tunnel.services[0].proto:"},
		{"mode all", "enabled: true\nrole: server\nlisten: :4443\nservices:\n- {name: media, proto: udp, listen: h:1-9, mode: all}\n", ""},
		{"bad mode", "enabled: true\nrole: server\nlisten: :4443\nservices:\n- {name: media, proto: udp, listen: h:1, mode: some}\n", `tunnel.services[0].mode: "some" is not one or all`},
		{"service priority", "enabled: true\nrole: client\nserver: h:1\nservices:\n- {name: sip, proto: udp, target: h:1, priority: 0x100}\n", "tunnel.services[0].priority: 256 is not 1-255"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Section
			if err := yaml.Unmarshal([]byte(tc.doc), &s); err != nil {
				t.Fatal(err)
			}
			err := s.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, ok := field.As(err); !ok || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	var s Section
	_ = yaml.Unmarshal([]byte("enabled: true\nrole: client\nserver: h:1\nkeep_alive: 300ms\ndatagram_connections: 2\nservices:\n- {name: web, proto: tcp, target: t:1, priority: 7}\n"), &s)
	c := s.Config()
	if c.KeepAlive != 300*time.Millisecond || c.DatagramConnections != 2 || len(c.Services) != 1 || c.Services[0].Target != "t:1" || c.Services[0].Priority != 7 {
		t.Fatalf("Config() = %+v", c)
	}
}
