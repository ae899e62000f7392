package sipedge

import (
	"context"

	"github.com/emiago/sipgo/sip"
)

// Target is one resolved next hop of an outbound federated call.
type Target struct {
	Transport string // udp, tcp or tls
	Addr      string // ip:port
}

// Resolver answers the DNS questions of RFC 3263.
type Resolver interface {
	LookupNAPTR(ctx context.Context, name string) ([]NAPTR, error)
	LookupSRV(ctx context.Context, name string) ([]SRV, error)
	LookupHost(ctx context.Context, name string) ([]string, error)
}

// NAPTR is one NAPTR record (RFC 3403) as RFC 3263 uses it.
type NAPTR struct {
	Order, Preference uint16
	Flags, Service    string
	Replacement       string
}

// SRV is one SRV record (RFC 2782).
type SRV struct {
	Priority, Weight, Port uint16
	Target                 string
}

func resolveSIP(ctx context.Context, r Resolver, u sip.Uri) ([]Target, error) {
	return nil, ErrNoCallServer
}

type dnsResolver struct{ server string }

func (d *dnsResolver) LookupNAPTR(ctx context.Context, name string) ([]NAPTR, error) { return nil, nil }
func (d *dnsResolver) LookupSRV(ctx context.Context, name string) ([]SRV, error)     { return nil, nil }
func (d *dnsResolver) LookupHost(ctx context.Context, name string) ([]string, error) { return nil, nil }
