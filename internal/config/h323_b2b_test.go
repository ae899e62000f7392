package config

import "testing"

// TestH323OpenB2BFollowsSIP: a document that sets sip.federation.open_b2b
// and leaves h323.federation.open_b2b out opens H.323 federation too; an
// explicit h323 setting wins.
func TestH323OpenB2BFollowsSIP(t *testing.T) {
	for _, tc := range []struct {
		name, h323 string
		want       bool
	}{
		{"unset follows sip", "", true},
		{"explicit false wins", "  federation: {open_b2b: false}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte("version: 1\nsip:\n  federation: {open_b2b: true}\nh323:\n  enabled: true\n  gatekeeper: 10.0.0.5:1719\n" + tc.h323))
			if err != nil {
				t.Fatal(err)
			}
			hc, err := c.H323.Config(c.H323Interfaces())
			if err != nil {
				t.Fatal(err)
			}
			if hc.OpenB2B != tc.want {
				t.Errorf("h323 OpenB2B = %v, want %v", hc.OpenB2B, tc.want)
			}
		})
	}
}
