package sipedge

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/net/dns/dnsmessage"
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

var naptrServices = map[string]string{"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}

// resolveSIP finds the next hops for a SIP URI by RFC 3263 section 4: a
// numeric host or an explicit port skips NAPTR and SRV; otherwise NAPTR
// picks transports and SRV names, then SRV and A give addresses; with no
// NAPTR, SRV is tried for each transport; with neither, A on port 5060.
func resolveSIP(ctx context.Context, r Resolver, u sip.Uri) ([]Target, error) {
	host := strings.TrimSuffix(strings.ToLower(u.Host), ".")
	want := strings.ToLower(u.UriParams.GetOr("transport", ""))
	if strings.EqualFold(u.Scheme, "sips") {
		want = "tls"
	}
	defPort := func(tr string) int {
		if tr == "tls" {
			return 5061
		}
		return 5060
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		tr := want
		if tr == "" {
			tr = "udp"
		}
		port := u.Port
		if port == 0 {
			port = defPort(tr)
		}
		return []Target{{Transport: tr, Addr: netip.AddrPortFrom(ip, uint16(port)).String()}}, nil
	}
	if u.Port != 0 {
		tr := want
		if tr == "" {
			tr = "udp"
		}
		return hostTargets(ctx, r, host, tr, u.Port)
	}
	var out []Target
	type srvName struct{ name, transport string }
	var names []srvName
	if nap, err := r.LookupNAPTR(ctx, host); err == nil && len(nap) > 0 {
		sort.SliceStable(nap, func(i, j int) bool {
			if nap[i].Order != nap[j].Order {
				return nap[i].Order < nap[j].Order
			}
			return nap[i].Preference < nap[j].Preference
		})
		for _, n := range nap {
			tr, ok := naptrServices[strings.ToUpper(n.Service)]
			if !ok || !strings.EqualFold(n.Flags, "s") || (want != "" && tr != want) {
				continue
			}
			names = append(names, srvName{strings.TrimSuffix(n.Replacement, "."), tr})
		}
	}
	if len(names) == 0 {
		for _, c := range []srvName{{"_sips._tcp." + host, "tls"}, {"_sip._tcp." + host, "tcp"}, {"_sip._udp." + host, "udp"}} {
			if want == "" || c.transport == want {
				names = append(names, c)
			}
		}
	}
	for _, n := range names {
		srvs, err := r.LookupSRV(ctx, n.name)
		if err != nil || len(srvs) == 0 {
			continue
		}
		sort.SliceStable(srvs, func(i, j int) bool {
			if srvs[i].Priority != srvs[j].Priority {
				return srvs[i].Priority < srvs[j].Priority
			}
			return srvs[i].Weight > srvs[j].Weight
		})
		for _, s := range srvs {
			ts, err := hostTargets(ctx, r, strings.TrimSuffix(s.Target, "."), n.transport, int(s.Port))
			if err == nil {
				out = append(out, ts...)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	tr := want
	if tr == "" {
		tr = "udp"
	}
	return hostTargets(ctx, r, host, tr, defPort(tr))
}

func hostTargets(ctx context.Context, r Resolver, host, tr string, port int) ([]Target, error) {
	addrs, err := r.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	var out []Target
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil {
			out = append(out, Target{Transport: tr, Addr: netip.AddrPortFrom(ip, uint16(port)).String()})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sipedge: resolve %s: no addresses", host)
	}
	return out, nil
}

// dnsResolver asks one DNS server over UDP (golang.org/x/net/dns/dnsmessage);
// NAPTR is not in the standard library's resolver.
type dnsResolver struct{ server string }

var errNoDNS = errors.New("sipedge: no DNS server")

func (d *dnsResolver) addr() (string, error) {
	if d.server != "" {
		return d.server, nil
	}
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return "", errNoDNS
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			return net.JoinHostPort(f[1], "53"), nil
		}
	}
	return "", errNoDNS
}

func (d *dnsResolver) query(ctx context.Context, name string, typ dnsmessage.Type) ([]dnsmessage.Resource, error) {
	server, err := d.addr()
	if err != nil {
		return nil, err
	}
	n, err := dnsmessage.NewName(strings.TrimSuffix(name, ".") + ".")
	if err != nil {
		return nil, err
	}
	var idb [2]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	msg := dnsmessage.Message{Header: dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: n, Type: typ, Class: dnsmessage.ClassINET}}}
	q, err := msg.Pack()
	if err != nil {
		return nil, err
	}
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dead := time.Now().Add(3 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dead) {
		dead = d
	}
	c.SetDeadline(dead)
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	for {
		k, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		var resp dnsmessage.Message
		if err := resp.Unpack(buf[:k]); err != nil || resp.ID != id || !resp.Response {
			continue
		}
		if resp.RCode != dnsmessage.RCodeSuccess {
			return nil, fmt.Errorf("sipedge: dns %s: %v", name, resp.RCode)
		}
		return resp.Answers, nil
	}
}

const typeNAPTR = dnsmessage.Type(35)

func (d *dnsResolver) LookupNAPTR(ctx context.Context, name string) ([]NAPTR, error) {
	ans, err := d.query(ctx, name, typeNAPTR)
	if err != nil {
		return nil, err
	}
	var out []NAPTR
	for _, a := range ans {
		u, ok := a.Body.(*dnsmessage.UnknownResource)
		if !ok || a.Header.Type != typeNAPTR {
			continue
		}
		if n, err := parseNAPTR(u.Data); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// parseNAPTR decodes NAPTR RDATA (RFC 3403 section 4.1); the replacement
// is never compressed.
func parseNAPTR(b []byte) (NAPTR, error) {
	var n NAPTR
	if len(b) < 4 {
		return n, errors.New("naptr: short")
	}
	n.Order, n.Preference = binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
	b = b[4:]
	var strs [3]string
	for i := range strs {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return n, errors.New("naptr: bad string")
		}
		strs[i] = string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
	}
	n.Flags, n.Service = strs[0], strs[1]
	var labels []string
	for len(b) > 0 {
		l := int(b[0])
		if l == 0 {
			break
		}
		if l > 63 || len(b) < 1+l {
			return n, errors.New("naptr: bad replacement")
		}
		labels = append(labels, string(b[1:1+l]))
		b = b[1+l:]
	}
	n.Replacement = strings.Join(labels, ".")
	return n, nil
}

func (d *dnsResolver) LookupSRV(ctx context.Context, name string) ([]SRV, error) {
	ans, err := d.query(ctx, name, dnsmessage.TypeSRV)
	if err != nil {
		return nil, err
	}
	var out []SRV
	for _, a := range ans {
		if s, ok := a.Body.(*dnsmessage.SRVResource); ok {
			out = append(out, SRV{Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: s.Target.String()})
		}
	}
	return out, nil
}

func (d *dnsResolver) LookupHost(ctx context.Context, name string) ([]string, error) {
	if ip, err := netip.ParseAddr(name); err == nil {
		return []string{ip.String()}, nil
	}
	ans, err := d.query(ctx, name, dnsmessage.TypeA)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range ans {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			out = append(out, netip.AddrFrom4(r.A).String())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sipedge: %s has no A record", name)
	}
	return out, nil
}
