package sipedge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// PingResult is the outcome of an OPTIONS ping (Ping).
type PingResult struct {
	Target      string  `json:"target"`      // the Request-URI
	Transport   string  `json:"transport"`   // udp, tcp or tls
	Destination string  `json:"destination"` // ip:port the request was sent to
	Status      int     `json:"status"`      // 0 when no response came
	StatusLine  string  `json:"status_line"` // "200 OK"
	Server      string  `json:"server,omitempty"`
	RTTMs       float64 `json:"rtt_ms"`
	Error       string  `json:"error,omitempty"`
}

// ErrBadTarget is returned by Ping and Lookup for a target they cannot use.
var ErrBadTarget = errors.New("sipedge: bad target")

// Ping sends OPTIONS from the inside interface and waits for the final
// response or ctx. target is a SIP URI ("sip:host[:port][;transport=x]",
// resolved by RFC 3263 like a federated call's), a configured call
// server's address, or "" for the first call server. A request that got
// no response is a result with Error set, not an error.
func (s *Server) Ping(ctx context.Context, target string) (PingResult, error) {
	var ru sip.Uri
	var transport, dest string
	switch {
	case target == "" || !strings.Contains(target, ":") || isCallServer(s.lc().cs.order(), target):
		var cs *CallServer
		for _, c := range s.lc().cs.order() {
			if target == "" || c.Address == target {
				cs = &c
				break
			}
		}
		if cs == nil {
			return PingResult{}, fmt.Errorf("%w: no call server %q", ErrBadTarget, target)
		}
		ru = routeURI(*cs)
		ru.UriParams.Remove("lr")
		transport, dest = cs.Transport, cs.Address
	default:
		if err := sip.ParseUri(target, &ru); err != nil || (ru.Scheme != "sip" && ru.Scheme != "sips") || ru.Host == "" {
			return PingResult{}, fmt.Errorf("%w: %q is not a sip: URI", ErrBadTarget, target)
		}
		ts, err := resolveSIP(ctx, s.res, ru)
		if err != nil || len(ts) == 0 {
			return PingResult{}, fmt.Errorf("%w: resolve %s: %v", ErrBadTarget, ru.Host, err)
		}
		transport, dest = ts[0].Transport, ts[0].Addr
	}
	if transport == "" {
		transport = "udp"
	}
	r := PingResult{Target: ru.String(), Transport: transport, Destination: dest}
	start := time.Now()
	res, err := s.options(ctx, ru, transport, dest)
	r.RTTMs = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		r.Error = err.Error()
		return r, nil
	}
	r.Status, r.StatusLine = res.StatusCode, fmt.Sprintf("%d %s", res.StatusCode, res.Reason)
	if h := firstHeader(res, "Server"); h != nil {
		r.Server = h.Value()
	} else if h := firstHeader(res, "User-Agent"); h != nil {
		r.Server = h.Value()
	}
	return r, nil
}

func isCallServer(cs []CallServer, addr string) bool {
	for _, c := range cs {
		if c.Address == addr {
			return true
		}
	}
	return false
}

// LookupResult is what the edge's resolver answered (Lookup).
type LookupResult struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	NAPTR   []NAPTR  `json:"naptr,omitempty"`
	SRV     []SRV    `json:"srv,omitempty"`
	Addrs   []string `json:"addrs,omitempty"`
	Targets []Target `json:"targets,omitempty"` // type SIP: the RFC 3263 next hops
}

// Lookup asks the edge's resolver (the one federated calls use) about
// name: typ NAPTR, SRV, A, AAAA, or SIP (name is a SIP URI or domain,
// resolved to next hops by RFC 3263 section 4).
func (s *Server) Lookup(ctx context.Context, name, typ string) (LookupResult, error) {
	typ = strings.ToUpper(typ)
	r := LookupResult{Name: name, Type: typ}
	if name == "" || len(name) > 255 {
		return r, fmt.Errorf("%w: name must be 1 to 255 characters", ErrBadTarget)
	}
	var err error
	switch typ {
	case "NAPTR":
		r.NAPTR, err = s.res.LookupNAPTR(ctx, name)
	case "SRV":
		r.SRV, err = s.res.LookupSRV(ctx, name)
	case "A", "AAAA":
		var all []string
		all, err = s.res.LookupHost(ctx, name)
		for _, a := range all {
			ip, perr := netip.ParseAddr(a)
			if perr == nil && ip.Unmap().Is4() == (typ == "A") {
				r.Addrs = append(r.Addrs, a)
			}
		}
	case "SIP":
		var u sip.Uri
		if !strings.Contains(name, ":") || net.ParseIP(name) != nil {
			name = "sip:" + name
		}
		if perr := sip.ParseUri(name, &u); perr != nil || u.Host == "" {
			return r, fmt.Errorf("%w: %q is not a SIP URI or domain", ErrBadTarget, name)
		}
		r.Targets, err = resolveSIP(ctx, s.res, u)
	default:
		return r, fmt.Errorf("%w: type %q is not NAPTR, SRV, A, AAAA or SIP", ErrBadTarget, typ)
	}
	return r, err
}
