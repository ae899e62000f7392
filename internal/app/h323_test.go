package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestH323ServiceRunsAndReloads: an enabled h323 section runs the RAS
// proxy (a GRQ to its port is answered), is judged by readiness, and
// names what a reload cannot apply.
func TestH323ServiceRunsAndReloads(t *testing.T) {
	n := newNode(t)
	rasPort, sigPort, gkPort := testpeer.FreePort(t), testpeer.FreePort(t), testpeer.FreePort(t)
	sec := func(gk int, ttl string) string {
		return fmt.Sprintf("h323:\n  enabled: true\n  ras_port: %d\n  signal_port: %d\n  gatekeeper: 127.0.0.1:%d\n  time_to_live: %s\n", rasPort, sigPort, gk, ttl)
	}
	n.write(n.doc("info", sec(gkPort, "300s")))
	a := n.mustStart(Options{})
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	grq, err := ras.GRQ(1, ras.Endpoint{RAS: netip.MustParseAddrPort("127.0.0.1:1719"), Terminal: true}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(rasPort))
	buf := make([]byte, 2048)
	var answered bool
	// The service binds after Run starts: ask until it answers.
	for i := 0; i < 50 && !answered; i++ {
		c.WriteToUDPAddrPort(grq, dst)
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			m, err := ras.Parse(buf[:n])
			answered = err == nil && m.Choice == h225.RasMessage_GatekeeperConfirm
		}
	}
	if !answered {
		t.Fatal("the h323 service did not answer a GRQ")
	}
	var found bool
	for _, ch := range a.ready(context.Background()) {
		if ch.Name == "h323" {
			found = true
			if !ch.OK {
				t.Errorf("h323 readiness: %s", ch.Error)
			}
		}
	}
	if !found {
		t.Error("readiness does not judge the h323 service")
	}
	if _, _, err := a.Replace(context.Background(), []byte(n.doc("info", sec(gkPort, "120s"))), "alice", "", 1); err != nil {
		t.Fatal(err)
	}
	if p := a.pending(); len(p) != 0 {
		t.Errorf("a time_to_live change (live) is pending: %v", p)
	}
	if _, _, err := a.Replace(context.Background(), []byte(n.doc("info", sec(testpeer.FreePort(t), "120s"))), "alice", "", 2); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(a.pending(), ","); p != "h323.gatekeeper" {
		t.Errorf("pending_restart = %s, want h323.gatekeeper", p)
	}
	// Turning the service off applies at restart, and says so.
	if _, _, err := a.Replace(context.Background(), []byte(n.doc("info", "h323:\n  enabled: false\n")), "alice", "", 3); err != nil {
		t.Fatal(err)
	}
	if p := a.pending(); !slices.Contains(p, "h323.enabled") {
		t.Errorf("pending_restart = %v, want h323.enabled", p)
	}
}
