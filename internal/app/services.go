package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/accessproxy"
	"github.com/portico-edge/portico/internal/certs"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323proxy"
	"github.com/portico-edge/portico/internal/ha"
	"github.com/portico-edge/portico/internal/ladder"
	"github.com/portico-edge/portico/internal/logging"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/media/ng"
	"github.com/portico-edge/portico/internal/policy"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/snmp"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/tunnel"
	"github.com/portico-edge/portico/internal/turn"
)

// service is one thing the app runs under its errgroup.
type service struct {
	name    string
	run     func(ctx context.Context) error
	running atomic.Bool
	err     atomic.Pointer[string]
}

// serviceDeps are what services are built from besides the configuration.
type serviceDeps struct {
	log   *slog.Logger
	reg   prometheus.Registerer
	st    store.Store
	certs *certs.Store
	env   func(string) string
	hist  sipedge.History
	// events records guard blocks and unblocks (the history spool).
	events func(store.Event)
	fds    *connlimit.Reserve // descriptors kept free for management
	// node is this node's name: validate builds the document with its
	// part (config.ForNode). Empty (the CLI): the document's node.name,
	// and a cluster document is checked for every node.
	node string
	// nodeFlag is set when node came from --node-name: it names the node
	// even for a document without nodes, whose own node.name otherwise
	// does.
	nodeFlag bool
	// dataDir holds runtime files (the tunnel's identity and pins); empty
	// when only validating, which then keeps them in memory.
	dataDir string
	// snmp is the node's state for the SNMP agent; nil when only validating.
	snmp snmp.Provider
}

func (d serviceDeps) withRegisterer(r prometheus.Registerer) serviceDeps {
	d.reg = r
	return d
}

// built are the services of one configuration, and the handles the API needs.
type built struct {
	list        []*service
	relay       *media.Relay
	turn        *turn.Server
	accessProxy *accessproxy.Server
	tunnel      tunnelEnd // nil when tunnel.enabled is false
	sip         atomic.Pointer[sipedge.Server]
	h323        *h323proxy.Server
	guard       *guard.Guard
	ha          *ha.Node    // nil when ha.enabled is false
	closers     []io.Closer // in build order; close releases them in reverse
	// sipACL, turnACL, mgmtACL and h323ACL are policy.acl.sip, .turn,
	// .management, swapped on reload.
	sipACL, turnACL, mgmtACL, h323ACL policy.LiveACL
	reloads                           []reload // one per running service that reloads live
	// ladder keeps the signalling of recent SIP and H.323 calls (nil
	// without either edge, or with sip.capture.off).
	ladder *ladder.Store
	snmp   *snmp.Agent // nil when snmp.enabled is false
}

// reload is the contract every service's Reload follows, wired to the
// document: apply what can change live and return the field paths of what
// only a restart applies (relative to what the service started with).
type reload struct {
	section string // the YAML section it owns
	apply   func(cfg *config.Config) (restart []string, err error)
}

// close releases every service built, whether it ran or not. Safe to call
// more than once (each service's Close is).
func (b *built) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i].Close()
	}
}

// buildServices makes every enabled service from cfg. It does no I/O. On
// error, what was built is closed.
func buildServices(cfg *config.Config, d serviceDeps) (_ *built, err error) {
	b := &built{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	log, reg := d.log, d.reg
	out := b.list
	g, err := guard.New(guardConfig(cfg), guard.Deps{Logger: log, Registerer: reg, Events: guardEvents(d.events), OpenKernel: openNFT, Store: guardBlocks{d.st}})
	if err != nil {
		return nil, asConfigErrors(err)
	}
	b.guard = g
	b.closers = append(b.closers, g)
	if err := b.setACLs(cfg); err != nil {
		return nil, asConfigErrors(err)
	}
	// The VRRP speaker: VIPs for the services below (ha.enabled).
	var haService *service
	if cfg.HA.Enabled {
		n, err := ha.NewNode(haNodeConfig(cfg), ha.NodeDeps{Logger: logging.Component(log, "ha"), Registerer: reg})
		if err != nil {
			return nil, asConfigErrors(err)
		}
		if d.events != nil {
			n.Subscribe(haEvents(d.events))
		}
		b.ha = n
		haService = &service{name: "ha", run: n.Run}
		out = append(out, haService)
	}
	// The guard takes its whole section live (blocks in force stay); it
	// runs beside the spool, not as a readiness service.
	b.reloads = append(b.reloads, reload{"guard", func(next *config.Config) ([]string, error) {
		return g.Reload(guardConfig(next))
	}})
	hs, err := buildSync(cfg, d)
	if err != nil {
		return nil, err
	}
	if hs != nil && haService != nil {
		// A node that starts (or returns) takes the peer's live state
		// before it claims any VIP, so calls the peer carries keep their
		// media when a VIP moves back.
		speak := haService.run
		haService.run = func(ctx context.Context) error {
			if !waitSynced(ctx, hs.node.Synced, syncWaitLimit, syncWaitPoll) {
				log.Warn("ha: starting VRRP without the peer's live state", "component", "ha", "waited", syncWaitLimit.String())
			}
			return speak(ctx)
		}
	}
	if cfg.Media.Enabled {
		mc, err := cfg.Media.Config(media.Env{External: cfg.Interfaces.External.Address, PublicAddress: cfg.Interfaces.External.PublicAddress, Internal: cfg.Interfaces.Internal.Address})
		if err != nil {
			return nil, err
		}
		relay, err := media.New(mc, media.Deps{Logger: logging.Component(log, "media"), Registerer: reg, OnTimeout: func(t media.Timeout) {
			log.Warn("media inactivity", "component", "media", "session", uint64(t.ID), "label", t.Label, "silent", t.Silent)
			if s := b.sip.Load(); s != nil {
				s.MediaTimeout(t.Label) // the session label is the SIP call's ID
			}
		}, OnChange: hs.mediaChanged()})
		if err != nil {
			return nil, asConfigErrors(err)
		}
		b.relay = relay
		b.closers = append(b.closers, relay)
		out = append(out, &service{name: "media", run: relay.Run})
		if cfg.Media.NGListen != "" {
			srv, err := ng.New(ng.SectionConfig(cfg.Media), ng.Deps{Relay: relay, Logger: logging.Component(log, "media-ng"), Registerer: reg})
			if err != nil {
				return nil, config.FieldError{Path: "media.ng_listen", Reason: err.Error()}
			}
			out = append(out, &service{name: "media-ng", run: srv.Run})
		}
	}
	if cfg.TURN.Enabled {
		ts, err := turn.NewFromSection(cfg.TURN, turnEnv(cfg, d.env), turn.Deps{Logger: logging.Component(log, "turn"), Registerer: reg, Users: turnUsers{d.st}, Guard: b.guard, ACL: &b.turnACL, Descriptors: d.fds,
			OnChange: hs.turnChanged(),
			GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
				return d.certs.Select(h, cfg.TURN.Certificate)
			}})
		if err != nil {
			return nil, err
		}
		b.turn = ts
		b.closers = append(b.closers, ts)
		b.reloads = append(b.reloads, reload{"turn", func(next *config.Config) ([]string, error) {
			restart, err := ts.ReloadSection(next.TURN, turnEnv(next, d.env))
			if next.TURN.Certificate != cfg.TURN.Certificate {
				restart = append(restart, "turn.certificate")
			}
			return restart, err
		}})
		out = append(out, &service{name: "turn", run: ts.Run})
	}
	if cb := cfg.SIP.Capture; (cfg.SIP.Enabled || cfg.H323.Enabled) && !cb.Off {
		// One store of call signalling for both edges (sip.capture).
		b.ladder = ladder.New(ladder.Config{MaxCalls: cb.MaxCalls, MaxCallBytes: cb.MaxCallBytes, MaxBytes: cb.MaxBytes})
		b.ladder.Register(reg)
	}
	if cfg.SIP.Enabled && b.relay != nil {
		sc := sipConfig(cfg)
		tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return d.certs.Select(h, cfg.SIP.Certificate)
		}}
		var capture sipedge.Capture
		if b.ladder != nil {
			capture = b.ladder
		}
		// Each node of a cluster names itself in the Path and publishes the
		// registrations it holds to the shared store (scale-out: every
		// node's API lists the cluster's); a single node does neither.
		var node string
		var pub *sipedge.Publisher
		onReg := hs.registrationChanged()
		if len(cfg.Nodes) > 0 {
			if node = d.node; node == "" {
				node = cfg.Node.Name
			}
			if cs := clusterStoreOf(d.st); cs != nil {
				pub = sipedge.NewPublisher(cs, node, log, reg)
				onReg = bothKeys(onReg, pub.Changed)
			}
		}
		ss, err := sipedge.New(sc, sipedge.Deps{Logger: log, Registerer: reg, Media: b.relay, History: d.hist, TLSConfig: tc, Guard: b.guard, ACL: &b.sipACL, Descriptors: d.fds, Capture: capture,
			FlowSecret: hs.flowKey(), OnRegistration: onReg, OnCall: hs.callChanged(), Node: node})
		if err != nil {
			return nil, asConfigErrors(err)
		}
		if pub != nil {
			out = append(out, &service{name: "sip-cluster", run: func(ctx context.Context) error { return pub.Run(ctx, ss) }})
		}
		b.sip.Store(ss)
		b.closers = append(b.closers, ss)
		b.reloads = append(b.reloads, reload{"sip", func(next *config.Config) ([]string, error) {
			restart, err := ss.Reload(sipConfig(next))
			if next.SIP.Certificate != cfg.SIP.Certificate {
				restart = append(restart, "sip.certificate")
			}
			if next.SIP.Capture != cfg.SIP.Capture {
				restart = append(restart, "sip.capture")
			}
			return restart, err
		}})
		out = append(out, &service{name: "sip", run: ss.Run})
	}
	if cfg.H323.Enabled {
		hc, err := cfg.H323.Config(cfg.H323Interfaces())
		if err != nil {
			return nil, asConfigErrors(err)
		}
		hd := h323proxy.Deps{Logger: log, Registerer: reg, History: d.hist, Guard: b.guard, ACL: &b.h323ACL, Descriptors: d.fds,
			OnCall: hs.h323CallChanged()}
		if b.ladder != nil {
			hd.Capture = b.ladder
		}
		var h323Policy atomic.Pointer[policy.Policy]
		if b.relay != nil {
			// Calls need the media relay; without it the edge proxies RAS only.
			pol, err := callPolicy(cfg)
			if err != nil {
				return nil, asConfigErrors(err)
			}
			h323Policy.Store(pol)
			hd.Media = b.relay
			hd.Policy = func(c policy.Call) policy.Decision { return h323Policy.Load().Evaluate(c) }
			if d.hist != nil {
				hist := d.hist
				hd.Calls = func(r store.CallRecord) { hist.AddCall(context.Background(), r) }
				if b, ok := hist.(interface {
					AddCalls(context.Context, []store.CallRecord) error
				}); ok {
					hd.CallBatch = func(rs []store.CallRecord) { b.AddCalls(context.Background(), rs) }
				}
			}
		}
		if name := cfg.H323.H245TunnelService; name != "" {
			// The tunnel server is built below; calls start after it.
			hd.DialH245 = func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
				ts, ok := b.tunnel.(*tunnel.Server)
				if !ok {
					return nil, tunnel.ErrNoPeer
				}
				return ts.DialTo(ctx, name, to)
			}
		}
		hs, err := h323proxy.New(hc, hd)
		if err != nil {
			return nil, asConfigErrors(err)
		}
		b.h323 = hs
		b.closers = append(b.closers, hs)
		b.reloads = append(b.reloads, reload{"h323", func(next *config.Config) ([]string, error) {
			nc, err := next.H323.Config(next.H323Interfaces())
			if err != nil {
				return nil, err
			}
			var pol *policy.Policy
			if h323Policy.Load() != nil {
				if pol, err = callPolicy(next); err != nil {
					return nil, err
				}
			}
			restart, err := hs.Reload(nc)
			if err == nil && pol != nil {
				h323Policy.Store(pol)
			}
			if err == nil && next.H323.H245TunnelService != cfg.H323.H245TunnelService {
				restart = append(restart, "h323.h245_tunnel_service")
			}
			return restart, err
		}})
		// With the relay, hs runs the call-signalling proxy (package
		// h323proxy/callsig) on both signal_port listeners beside RAS.
		out = append(out, &service{name: "h323", run: hs.Run})
	}
	if cfg.Tunnel.Enabled {
		if err := b.buildTunnel(cfg, d); err != nil {
			return nil, err
		}
		out = append(out, &service{name: "tunnel", run: b.tunnel.Run})
	}
	if cfg.AccessProxy.Enabled {
		handlers := map[string]accessproxy.ConnHandler{}
		if b.turn != nil {
			ts := b.turn
			handlers["turn"] = accessproxy.ConnHandlerFunc(func(ctx context.Context, c net.Conn) { ts.HandleConn(ctx, c) })
		}
		if ss := b.sip.Load(); ss != nil {
			// SIP over WSS on the access proxy's port (route action handoff,
			// handler sip-wss); without SIP such a route fails validation.
			h, err := ss.WSHandoff()
			if err != nil {
				return nil, err
			}
			handlers["sip-wss"] = h
		}
		ap, err := accessproxy.New(cfg.AccessProxy.Config, accessproxy.Deps{Logger: log, Registerer: reg, Certs: d.certs, Handlers: handlers, Descriptors: d.fds})
		if err != nil {
			return nil, asConfigErrors(err)
		}
		b.accessProxy = ap
		b.closers = append(b.closers, ap)
		b.reloads = append(b.reloads, reload{"access_proxy", func(next *config.Config) ([]string, error) {
			return ap.Reload(next.AccessProxy.Config)
		}})
		out = append(out, &service{name: "access_proxy", run: ap.Run})
	}
	if cfg.SNMP.Enabled {
		s, err := b.buildSNMP(cfg, d)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if hs != nil {
		hs.registerTURN(b.turn)
		hs.registerH323(b.h323)
		out = append(out, hs.service(b.relay, b.sip.Load()))
	}
	b.list = out
	return b, nil
}

// setACLs compiles and installs the ACLs of policy.acl.
func (b *built) setACLs(cfg *config.Config) error {
	sip, err := policy.NewACL("policy.acl.sip", cfg.Policy.ACL.SIP)
	if err != nil {
		return err
	}
	turn, err := policy.NewACL("policy.acl.turn", cfg.Policy.ACL.TURN)
	if err != nil {
		return err
	}
	mgmt, err := policy.NewACL("policy.acl.management", cfg.Policy.ACL.Management)
	if err != nil {
		return err
	}
	h323, err := policy.NewACL("policy.acl.h323", cfg.Policy.ACL.H323)
	if err != nil {
		return err
	}
	ls, err := policy.Listeners("policy.acl.listeners", cfg.Policy.ACL.Listeners)
	if err != nil {
		return err
	}
	b.sipACL.Set(sip.WithListeners(ls))
	b.turnACL.Set(turn)
	b.mgmtACL.Set(mgmt)
	b.h323ACL.Set(h323.WithListeners(ls))
	return nil
}

// guardConfig is the guard section with the inside networks added to its
// allow list: the inside is never blocked.
func guardConfig(cfg *config.Config) guard.Config {
	g := cfg.Guard
	g.Allow = append(slices.Clone(g.Allow), cfg.Interfaces.Internal.Networks...)
	return g
}

// openNFT sets up the guard's nftables set in the node's namespace.
func openNFT() (guard.KernelSet, error) {
	ks, err := guard.NewNFTSet(-1)
	if err != nil {
		return nil, err
	}
	return noLoopback{ks}, nil
}

// noLoopback keeps loopback sources out of the kernel set: no outside
// source is loopback, and a loopback block in the kernel would cut the
// node off from itself (and, on a test machine, every other process).
type noLoopback struct{ guard.KernelSet }

func (k noLoopback) Add(p netip.Prefix, ttl time.Duration) error {
	if p.Addr().Unmap().IsLoopback() {
		return nil
	}
	return k.KernelSet.Add(p, ttl)
}

func (k noLoopback) Remove(p netip.Prefix) error {
	if p.Addr().Unmap().IsLoopback() {
		return nil
	}
	return k.KernelSet.Remove(p)
}

// haNodeConfig is the ha section as this node runs it: its name and every
// node's default priority.
func haNodeConfig(cfg *config.Config) ha.NodeConfig {
	nc := ha.NodeConfig{Section: cfg.HA, Name: cfg.Node.Name, Priorities: map[string]int{}}
	for _, p := range cfg.Nodes {
		nc.Priorities[p.Name] = p.EffectivePriority()
	}
	if len(cfg.Nodes) == 0 {
		nc.Priorities[cfg.Node.Name] = config.DefaultPriority
	}
	return nc
}

// haEvents records every VRRP transition in the event history.
func haEvents(record func(store.Event)) func(ha.Transition) {
	return func(t ha.Transition) {
		sev := "info"
		if t.From == ha.Master || t.To == ha.Master {
			sev = "warning" // VIPs moved
		}
		msg := fmt.Sprintf("VIP group %d: %s -> %s (%v)", t.VRID, t.From, t.To, t.VIPs)
		if t.Other.IsValid() {
			sev = "warning"
			msg = fmt.Sprintf("VIP group %d: split brain, another master %s on the segment; this node stays master (%v)", t.VRID, t.Other, t.VIPs)
		}
		record(store.Event{Time: t.Time.UTC(), Severity: sev, Component: "ha", Message: msg})
	}
}

// guardEvents records blocks in the event history.
func guardEvents(record func(store.Event)) func(guard.Event) {
	if record == nil {
		return nil
	}
	return func(e guard.Event) {
		msg := e.Action + " " + e.Source.String() + ": " + e.Reason
		if !e.Until.IsZero() {
			msg += " until " + e.Until.UTC().Format(time.RFC3339)
		}
		record(store.Event{Time: e.Time.UTC(), Severity: "warning", Component: "guard", Message: msg})
	}
}

func sipConfig(cfg *config.Config) sipedge.Config {
	c := cfg.SIP.Config(cfg.Interfaces.External.PublicAddress)
	c.Rules = cfg.Policy.Rules
	return c
}

// turnEnv is what the TURN section takes from the rest of the document.
func turnEnv(cfg *config.Config, env func(string) string) turn.Env {
	return turn.Env{
		ExternalAddress: cfg.Interfaces.External.Address, PublicAddress: cfg.Interfaces.External.PublicAddress,
		InsideNetworks: cfg.Interfaces.Internal.Networks, SocketBufferKB: cfg.Media.SocketBufferKB,
		Secret: env("PORTICO_TURN_SECRET"), Own: ownAddresses(cfg),
	}
}

// ownAddresses lists what the node listens on besides TURN, which TURN
// clients must never reach through a relay. A listen address without a
// host (":443") is every address.
func ownAddresses(cfg *config.Config) turn.Own {
	var own turn.Own
	add := func(a string) {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return
		}
		if host == "" {
			own.Listeners = append(own.Listeners, net.JoinHostPort("0.0.0.0", port), net.JoinHostPort("::", port))
		} else if _, err := netip.ParseAddr(host); err == nil {
			own.Listeners = append(own.Listeners, net.JoinHostPort(host, port))
		}
	}
	add(cfg.Management.Listen)
	add(cfg.Media.NGListen)
	if cfg.SIP.Enabled {
		for _, l := range cfg.SIP.Listeners {
			add(l.Address)
		}
	}
	if ap := cfg.AccessProxy; ap.Enabled {
		add(ap.Listen)
		for _, a := range ap.ExtraListen {
			add(a)
		}
		for _, m := range ap.TCP {
			add(m.Listen)
		}
	}
	for _, i := range []config.Interface{cfg.Interfaces.External, cfg.Interfaces.Internal, cfg.Interfaces.Management} {
		for _, a := range []string{i.Address, i.PublicAddress} {
			if _, err := netip.ParseAddr(a); err == nil {
				own.Addresses = append(own.Addresses, a)
			}
		}
	}
	return own
}

// turnUsers serves TURN long-term keys from the store.
type turnUsers struct{ st store.Store }

func (u turnUsers) TURNKey(ctx context.Context, realm, name string) ([]byte, error) {
	tu, err := u.st.TURNUser(ctx, realm, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", turn.ErrUnknownUser, name)
	}
	if err != nil {
		return nil, err
	}
	return tu.Key, nil
}

// certPersister keeps the certificate store's imports in the store.
type certPersister struct{ st store.Store }

func (p certPersister) SaveCertificate(ctx context.Context, name string, certPEM, keyPEM []byte) error {
	if certPEM == nil {
		certPEM = []byte{} // a CSR's key waiting for its certificate
	}
	return p.st.PutCertificate(ctx, store.Certificate{Name: name, CertPEM: certPEM, KeyPEM: keyPEM, CreatedAt: time.Now().UTC()})
}

func (p certPersister) DeleteCertificate(ctx context.Context, name string) error {
	return p.st.DeleteCertificate(ctx, name)
}

func (p certPersister) LoadCertificates(ctx context.Context) ([]certs.Stored, error) {
	cs, err := p.st.Certificates(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]certs.Stored, len(cs))
	for i, c := range cs {
		out[i] = certs.Stored{Name: c.Name, CertPEM: c.CertPEM, KeyPEM: c.KeyPEM}
	}
	return out, nil
}
