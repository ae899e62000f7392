//go:build linux

package sipedge

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/udpbuf"
)

// TestUDPReceiveBuffer: Serve gives each UDP listener the configured
// receive buffer (SO_RCVBUFFORCE as root, else up to net.core.rmem_max)
// and exports what the kernel granted and the kernel's drop counts; an
// out-of-range size is refused with its field path.
func TestUDPReceiveBuffer(t *testing.T) {
	floor := udpbuf.Least(1 << 20)
	reg := prometheus.NewRegistry()
	s, _ := serveUDP(t, Config{CallServers: []CallServer{{Address: "127.0.0.4:5060"}}, UDPReceiveBuffer: 1 << 20},
		Deps{Media: nopMedia{}, Registerer: reg})
	for _, iface := range []string{External, Internal} {
		// The kernel reports twice the size it accounts.
		if got := testutil.ToFloat64(s.udp.buffer.WithLabelValues(iface)); got < float64(floor) {
			t.Errorf("%s receive buffer %.0f, want at least %d", iface, got, floor)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "portico_sip_udp_kernel_drops_total"); err != nil || n != 2 {
		t.Errorf("portico_sip_udp_kernel_drops_total: %d series (%v), want one per interface", n, err)
	}

	sec := Section{Enabled: true, Listeners: []Listener{{Interface: External, Transport: "udp", Address: "127.0.0.1:5060"},
		{Interface: Internal, Transport: "udp", Address: "127.0.0.1:5070"}}, CallServers: []CallServer{{Address: "127.0.0.1:5080"}}}
	if c, err := sec.Config("").withDefaults(); err != nil || c.UDPReceiveBuffer != -1 {
		t.Errorf("default udp_receive_buffer = %d (%v), want -1 (the kernel's)", c.UDPReceiveBuffer, err)
	}
	sec.UDPReceiveBuffer = 100
	if es, ok := field.As(sec.Validate()); !ok || es[0].Path != "sip.udp_receive_buffer" {
		t.Errorf("Validate = %v, want an error at sip.udp_receive_buffer", es)
	}
}
