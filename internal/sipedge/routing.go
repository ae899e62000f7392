package sipedge

import (
	"context"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// hop is a next hop candidate for a call's outgoing leg.
type hop struct {
	transport  string
	addr       string
	callServer *CallServer
}

// plan is where a new call goes.
type plan struct {
	typ      string
	out      *side
	ruri     sip.Uri
	from, to sip.Uri
	fromName string
	hops     []hop
	fixed    bool   // hops[0] is an outside flow used for the whole dialog
	rule     string // the policy rule that refused the call
}

// classify decides a new call's type and destination, or refuses it.
func (s *Server) classify(sd *side, req *sip.Request, lc *liveConfig) (plan, int, string) {
	from, to := req.From(), req.To()
	if sd.name == External {
		flow, err := flowOf(req)
		if err != nil {
			return plan{}, 400, "Bad Request"
		}
		p := plan{out: s.int, from: from.Address, fromName: from.DisplayName}
		p.from.UriParams = nil
		user := req.Recipient.User
		switch {
		case s.regs.registered(aorOf(from.Address), flow):
			p.typ = CallRegistered
		case lc.federated(from.Address.Host):
			p.typ = CallFederation
		default:
			p.typ = CallGuest
		}
		d := lc.decide(p.typ, req, flow.Source.Addr(), user)
		if !d.Allowed() {
			s.m.rejected.WithLabelValues("policy").Inc()
			p.rule = d.Rule
			return p, d.Code, d.Reason
		}
		user = d.Destination
		p.ruri = sip.Uri{Scheme: "sip", User: user, Host: s.cfg.Domain}
		p.to = sip.Uri{Scheme: "sip", User: user, Host: s.cfg.Domain}
		for _, cs := range lc.cs.order() {
			cs := cs
			p.hops = append(p.hops, hop{transport: cs.Transport, addr: cs.Address, callServer: &cs})
		}
		p.hops = routeTo(p.hops, d.CallServer)
		return p, 0, ""
	}
	// From the inside: to a registered endpoint (our Path came back as
	// Route), or out to a federated domain.
	p := plan{out: s.ext, fromName: from.DisplayName}
	p.from = sip.Uri{Scheme: "sip", User: from.Address.User, Host: s.ext.host}
	for _, h := range allHeaders(req, "Route") {
		r, ok := h.(*sip.RouteHeader)
		if !ok || r.Address.User == "" {
			continue
		}
		f, err := s.flows.decode(r.Address.User)
		if err != nil {
			continue
		}
		p.typ = CallInbound
		p.ruri = req.Recipient
		p.to = sip.Uri{Scheme: "sip", User: to.Address.User, Host: s.ext.host}
		p.hops = []hop{{transport: f.Transport, addr: f.Source.String()}}
		p.fixed = true
		return p, 0, ""
	}
	if code, reason := s.otherNodeFlow(req); code != 0 {
		return plan{typ: CallInbound}, code, reason
	}
	host := strings.ToLower(req.Recipient.Host)
	if host != "" && host != strings.ToLower(s.cfg.Domain) && host != s.int.host && lc.federated(host) {
		p.typ = CallFederation
		p.ruri = sip.Uri{Scheme: "sip", User: req.Recipient.User, Host: req.Recipient.Host, Port: req.Recipient.Port}
		p.to = sip.Uri{Scheme: "sip", User: to.Address.User, Host: to.Address.Host}
		if s.cfg.Domain != "" {
			p.from.Host = s.cfg.Domain
		}
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		targets, err := resolveSIP(ctx, s.res, req.Recipient)
		cancel()
		if err != nil || len(targets) == 0 {
			return p, 404, "Not Found"
		}
		for _, t := range targets {
			p.hops = append(p.hops, hop{transport: t.Transport, addr: t.Addr})
		}
		return p, 0, ""
	}
	return plan{typ: CallInbound}, 404, "Not Found"
}

// federated reports whether calls with domain are allowed by federation.
func (lc *liveConfig) federated(domain string) bool {
	if lc.cfg.Federation.OpenB2B {
		return true
	}
	domain = strings.ToLower(domain)
	for _, d := range lc.cfg.Federation.AllowedDomains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}
