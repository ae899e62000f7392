package h323proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// TestMediaTraversalConfirmed: H.460.19 is confirmed in GCF and RCF, with
// Portico as mediaTraversalServer, to an endpoint that offers it with
// H.460.18; not alone, not when media traversal is off, and never inside.
func TestMediaTraversalConfirmed(t *testing.T) {
	for _, tt := range []struct {
		name       string
		features   []h225.GenericData
		disable    bool
		want19     bool
		registered bool
	}{
		{"with H.460.18", []h225.GenericData{ras.Feature(ras.H46018), ras.Feature(ras.H46019, ras.Flag(ras.H46019TransmitMultiplexed))}, false, true, true},
		{"alone", []h225.GenericData{ras.Feature(ras.H46019)}, false, false, false},
		{"media traversal off", []h225.GenericData{ras.Feature(ras.H46018), ras.Feature(ras.H46019)}, true, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.MediaTraversal = !tt.disable })
			e := endpoint("room-19", false)
			e.FeatureSet = ras.Supported(tt.features...)
			h.ep.send(h.ext, ras.GRQ(1, e))
			_, m := h.ep.expect(h225.RasMessage_GatekeeperConfirm)
			check := func(what string, fs *h225.FeatureSet) {
				t.Helper()
				f := ras.FeatureIn(fs, ras.H46019)
				if (f != nil) != tt.want19 {
					t.Fatalf("%s confirms H.460.19: %v, want %v", what, f != nil, tt.want19)
				}
				if f != nil && (ras.Param(f, ras.H46019TraversalServer) == nil || ras.Param(f, ras.H46019TransmitMultiplexed) == nil) {
					t.Fatalf("%s H.460.19 parameters %+v: want mediaTraversalServer and supportTransmitMultiplexedMedia", what, f.Parameters)
				}
				if (ras.FeatureIn(fs, ras.H46018) != nil) != tt.registered {
					t.Fatalf("%s H.460.18: want %v", what, tt.registered)
				}
			}
			check("GCF", m.GatekeeperConfirm.FeatureSet)
			h.ep.send(h.ext, ras.RRQ(2, e))
			from, g := h.gk.expect(h225.RasMessage_RegistrationRequest)
			if rrq := g.RegistrationRequest; rrq.FeatureSet != nil || ras.Generic(rrq.GenericData, ras.H46019) != nil {
				t.Fatal("traversal features relayed inside")
			}
			h.gk.send(from, ras.RCF(g.RegistrationRequest, insideGKID, insideEPID, gkSignal, 60))
			_, out := h.ep.expect(h225.RasMessage_RegistrationConfirm)
			check("RCF", out.RegistrationConfirm.FeatureSet)
			ep, ok := h.s.Outside("room-19")
			if !ok || ep.H46019 != tt.want19 || ep.H46019Multiplex != (tt.want19 && tt.name == "with H.460.18") {
				t.Fatalf("registration %+v, H46019 want %v", ep, tt.want19)
			}
		})
	}
}

// TestMediaTraversalReload: switching media traversal needs a restart
// (the call proxy holds it); until then registrations keep the old
// setting.
func TestMediaTraversalReload(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MediaTraversal = true })
	h.s.mu.Lock()
	next := h.s.cfg
	h.s.mu.Unlock()
	next.MediaTraversal = false
	if restart, err := h.s.Reload(next); err != nil || len(restart) != 1 || restart[0] != "h323.disable_media_traversal" {
		t.Fatalf("Reload = %v, %v", restart, err)
	}
	e := endpoint("room-19", false)
	e.FeatureSet = ras.Supported(ras.Feature(ras.H46018), ras.Feature(ras.H46019))
	h.ep.send(h.ext, ras.GRQ(1, e))
	if _, m := h.ep.expect(h225.RasMessage_GatekeeperConfirm); ras.FeatureIn(m.GatekeeperConfirm.FeatureSet, ras.H46019) == nil {
		t.Fatal("H.460.19 withdrawn before the restart")
	}
}

// TestMediaKeepAliveReload: the H.460.19 keep-alive payload type and
// interval need a restart (the call proxy holds them); an invalid one is
// refused with its field.
func TestMediaKeepAliveReload(t *testing.T) {
	h := newHarness(t, nil)
	h.s.mu.Lock()
	next := h.s.cfg
	h.s.mu.Unlock()
	next.MediaKeepAlivePayloadType, next.MediaKeepAliveInterval = 100, 5*time.Second
	if restart, err := h.s.Reload(next); err != nil || len(restart) != 1 || restart[0] != "h323.media_keep_alive_interval" {
		t.Fatalf("Reload = %v, %v", restart, err)
	}
	h.s.mu.Lock()
	kept := h.s.cfg
	h.s.mu.Unlock()
	if kept.MediaKeepAlivePayloadType != DefaultMediaKeepAlivePayloadType || kept.MediaKeepAliveInterval != DefaultMediaKeepAliveInterval {
		t.Errorf("applied live: %d, %s", kept.MediaKeepAlivePayloadType, kept.MediaKeepAliveInterval)
	}
	next.MediaKeepAlivePayloadType = 34
	if _, err := h.s.Reload(next); err == nil || !strings.Contains(err.Error(), "h323.media_keep_alive_payload_type") {
		t.Errorf("Reload of payload type 34 = %v, want refused", err)
	}
}
