package snmp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// Env is what the agent takes from the rest of the node.
type Env struct {
	// Node is node.name: sysName and the seed of the default engine ID.
	Node string
	// ManagementAddress is interfaces.management.address, the default
	// listen host.
	ManagementAddress string
	// Version is the build's version, in sysDescr.
	Version string
	// DataDir keeps snmpEngineBoots across restarts (file
	// snmp-engine-boots). Empty: boots start at 1 each time.
	DataDir string
}

// Deps are the agent's collaborators.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Provider   Provider
}

// community is one v2c community with its networks.
type community struct {
	secret []byte
	nets   []netip.Prefix
}

// maxResponse caps a response's size: the largest UDP payload over IPv4.
const maxResponse = 65507

// timeWindow is how far a request's engine time may be from the agent's
// (RFC 3414 §3.2 step 7b).
const timeWindow = 150

// viewTTL is how long one view of the node answers requests: a walk reads
// one consistent moment without gathering the node's state per request.
const viewTTL = time.Second

// maxBoots is snmpEngineBoots' ceiling (RFC 3414 §2.2.2).
const maxBoots = 2147483647

// Agent is Portico's SNMP agent: read-only Get, GetNext and GetBulk over
// SNMPv2c (RFC 3416, RFC 1901) and SNMPv3 with the USM (RFC 3412, RFC 3414,
// RFC 7860, RFC 3826), and notifications to the configured receivers.
//
// Each listening socket is served by one goroutine that Run owns; the view
// of the node is rebuilt at most once per viewTTL under viewMu. What a
// reload changes (communities, users, receivers, the system texts, the
// rate) is one settings value swapped atomically. Requests
// that fail a check are dropped and counted by reason
// (portico_snmp_refused_total); SNMPv3 failures the manager must learn of
// are answered with a Report (RFC 3414 §3.2).
type Agent struct {
	env      Env
	log      *slog.Logger
	prov     Provider
	engineID []byte
	listen   []string
	set      atomic.Pointer[settings]

	boots     atomic.Uint32
	engineT0  time.Time // engine time 0
	startOnce sync.Once
	salt      atomic.Uint64
	rate      limiter

	viewMu   sync.Mutex
	view     view
	viewTime time.Time

	stats *stats
	notes *notifier

	mu     sync.Mutex
	conns  []net.PacketConn
	closed bool
}

// New validates the section and builds the agent; it does no I/O.
func New(sec Section, env Env, deps Deps) (*Agent, error) {
	if err := sec.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Provider == nil {
		return nil, errors.New("snmp: no provider")
	}
	a := &Agent{env: env, log: deps.Logger, prov: deps.Provider, listen: sec.ListenAddrs(env.ManagementAddress), rate: limiter{per: sec.RatePerSecond}}
	a.engineID = DefaultEngineID(env.Node)
	if sec.EngineID != "" {
		a.engineID, _ = hex.DecodeString(sec.EngineID)
	}
	st, err := newSettings(sec, env, a.engineID)
	if err != nil {
		return nil, err
	}
	a.set.Store(st)
	var seed [8]byte
	rand.Read(seed[:])
	a.salt.Store(binary.BigEndian.Uint64(seed[:]))
	a.stats = newStats(deps.Registerer)
	a.notes = newNotifier(a, deps.Logger)
	return a, nil
}

// settings are what the section sets that a reload can change.
type settings struct {
	sec   Section
	users map[string]*usmUser
	comms []community
	sys   system
}

// newSettings builds the settings of sec, with the USM keys localized to
// engineID.
func newSettings(sec Section, env Env, engineID []byte) (*settings, error) {
	st := &settings{sec: sec, users: map[string]*usmUser{}, sys: system{descr: sec.Description, contact: sec.Contact, location: sec.Location}}
	if st.sys.descr == "" {
		st.sys.descr = strings.TrimSpace("Portico " + env.Version)
	}
	for _, u := range sec.Users {
		lu, err := newUSMUser(u, engineID)
		if err != nil {
			return nil, fmt.Errorf("snmp.users %s: %w", u.Name, err)
		}
		st.users[u.Name] = &lu
	}
	for _, c := range sec.Communities {
		cm := community{secret: []byte(c.Community)}
		for _, n := range c.Networks {
			p, err := netip.ParsePrefix(n)
			if err != nil {
				return nil, err
			}
			cm.nets = append(cm.nets, p.Masked())
		}
		st.comms = append(st.comms, cm)
	}
	return st, nil
}

// Reload applies sec live: communities, users, receivers, the system
// texts, the rate and the certificate warning. It returns the fields only
// a restart applies (snmp.listen, snmp.engine_id); until then the USM keys
// stay localized to the running engine ID. A section that does not
// validate changes nothing.
func (a *Agent) Reload(sec Section, env Env) (restart []string, err error) {
	if err := sec.Validate(); err != nil {
		return nil, err
	}
	st, err := newSettings(sec, a.env, a.engineID)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(sec.ListenAddrs(env.ManagementAddress), a.listen) {
		restart = append(restart, "snmp.listen")
	}
	if sec.EngineID != a.set.Load().sec.EngineID {
		restart = append(restart, "snmp.engine_id")
	}
	a.set.Store(st)
	a.rate.setPer(sec.RatePerSecond)
	a.viewMu.Lock()
	a.view = nil // the system texts show at once
	a.viewMu.Unlock()
	return restart, nil
}

// DefaultEngineID is the engine ID of a node named node (RFC 3411 §5,
// SnmpEngineID format 5: octets chosen by the enterprise): the enterprise
// number and eight octets of SHA-256 of the node name.
func DefaultEngineID(node string) []byte {
	sum := sha256.Sum256([]byte("portico snmp engine " + node))
	id := binary.BigEndian.AppendUint32(nil, 0x80000000|Enterprise)
	id = append(id, 5)
	return append(id, sum[:8]...)
}

// EngineID returns the agent's snmpEngineID.
func (a *Agent) EngineID() []byte { return bytes.Clone(a.engineID) }

// start counts this boot (once): snmpEngineBoots is read from the data
// directory, incremented and written back, and engine time starts at 0.
func (a *Agent) start() {
	a.startOnce.Do(func() {
		boots := uint32(1)
		if a.env.DataDir != "" {
			p := filepath.Join(a.env.DataDir, "snmp-engine-boots")
			if b, err := os.ReadFile(p); err == nil {
				if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
					boots = uint32(min(n+1, maxBoots))
				}
			}
			tmp := p + ".tmp"
			if err := os.WriteFile(tmp, []byte(strconv.FormatUint(uint64(boots), 10)+"\n"), 0o600); err == nil {
				err = os.Rename(tmp, p)
				if err != nil {
					a.log.Warn("snmpEngineBoots not saved; managers may see replays as current after a restart", "err", err)
				}
			}
		}
		a.boots.Store(boots)
		a.engineT0 = time.Now()
	})
}

// engineTime is snmpEngineTime: seconds since this boot.
func (a *Agent) engineTime() uint32 {
	return uint32(time.Since(a.engineT0) / time.Second)
}

// Run binds every listen address and serves until ctx ends. It also sends
// the queued notifications.
func (a *Agent) Run(ctx context.Context) error {
	a.start()
	var pcs []net.PacketConn
	for _, addr := range a.listen {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			for _, p := range pcs {
				p.Close()
			}
			return fmt.Errorf("snmp: listen %s: %w", addr, err)
		}
		pcs = append(pcs, pc)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, pc := range pcs {
		g.Go(func() error { return a.Serve(gctx, pc) })
	}
	g.Go(func() error { a.notes.run(gctx); return nil })
	return g.Wait()
}

// Serve answers requests on pc until ctx ends or Close; it closes pc.
func (a *Agent) Serve(ctx context.Context, pc net.PacketConn) error {
	a.start()
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		pc.Close()
		return nil
	}
	a.conns = append(a.conns, pc)
	a.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer pc.Close()
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("snmp: read: %w", err)
		}
		src := addrPort(from)
		if !a.rate.allow(src.Addr(), time.Now()) {
			a.stats.refuse(reasonRate)
			continue
		}
		if resp := a.handle(buf[:n], src.Addr()); resp != nil {
			if _, err := pc.WriteTo(resp, from); err != nil {
				a.log.Debug("snmp response not sent", "to", src.String(), "err", err)
			}
		}
	}
}

// Close stops serving. Safe to call twice.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for _, pc := range a.conns {
		pc.Close()
	}
	a.conns = nil
	return nil
}

func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// handle answers one message; nil: nothing is sent back.
func (a *Agent) handle(b []byte, src netip.Addr) []byte {
	m, err := parseMessage(b)
	if err != nil {
		if errors.Is(err, errBadVersion) {
			a.stats.refuse(reasonVersion)
		} else {
			a.stats.refuse(reasonMalformed)
		}
		return nil
	}
	if m.version == 1 {
		return a.v2c(m, src.Unmap())
	}
	return a.v3(b, m)
}

// communityAllowed reports whether c is a community answered from src;
// every configured community is compared in constant time.
func (a *Agent) communityAllowed(c []byte, src netip.Addr) bool {
	ok := false
	for _, cm := range a.set.Load().comms {
		if subtle.ConstantTimeCompare(cm.secret, c) != 1 {
			continue
		}
		for _, n := range cm.nets {
			if n.Contains(src) {
				ok = true
			}
		}
	}
	return ok
}

func (a *Agent) v2c(m message, src netip.Addr) []byte {
	if !a.communityAllowed(m.community, src) {
		a.stats.refuse(reasonCommunity)
		return nil
	}
	req, err := parsePDU(m.pdu)
	if err != nil {
		a.stats.refusePDU(err)
		return nil
	}
	a.stats.answered("v2c")
	p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: string(m.community), PDUType: gosnmp.GetResponse, RequestID: uint32(req.id)}
	return a.respond(p, req, maxResponse)
}

// respond fills p with the answer to req and encodes it within limit
// octets: a GetBulk answer is cut short to fit (RFC 3416 §4.2.3), any
// other answer that does not fit is tooBig.
func (a *Agent) respond(p *gosnmp.SnmpPacket, req request, limit int) []byte {
	p.Error, p.ErrorIndex, p.Variables = a.answer(req)
	for {
		b, err := p.MarshalMsg()
		if err == nil && len(b) <= limit {
			return b
		}
		if err != nil {
			a.log.Debug("snmp response not encoded", "err", err)
		}
		if req.typ == pduGetBulk && len(p.Variables) > 1 {
			p.Variables = p.Variables[:len(p.Variables)/2]
			continue
		}
		if p.Error == gosnmp.TooBig {
			return nil
		}
		p.Error, p.ErrorIndex, p.Variables = gosnmp.TooBig, 0, nil
	}
}

// current returns the view of the node, rebuilt when older than viewTTL.
func (a *Agent) current() view {
	a.viewMu.Lock()
	defer a.viewMu.Unlock()
	now := time.Now()
	if a.view == nil || now.Sub(a.viewTime) >= viewTTL {
		eng := engine{id: a.engineID, boots: a.boots.Load(), time: a.engineTime()}
		for c := range eng.usm {
			eng.usm[c] = a.stats.usm(uint32(c))
		}
		sys := a.set.Load().sys
		sys.started = a.engineT0
		a.view = build(sys, eng, a.prov.Snapshot(), interfaces(), now)
		a.viewTime = now
	}
	return a.view
}

// maxBulkVarbinds caps a GetBulk answer before it is fitted to the size.
const maxBulkVarbinds = 2048

// answer computes a response's error status, index and variables.
func (a *Agent) answer(req request) (gosnmp.SNMPError, uint8, []gosnmp.SnmpPDU) {
	if req.typ == pduSet {
		// Read-only: every object refuses writes (RFC 3416 §4.2.5).
		vars := make([]gosnmp.SnmpPDU, len(req.oids))
		for i, o := range req.oids {
			vars[i] = gosnmp.SnmpPDU{Name: o.String(), Type: gosnmp.Null}
		}
		return gosnmp.NoAccess, 1, vars
	}
	v := a.current()
	var vars []gosnmp.SnmpPDU
	switch req.typ {
	case pduGet:
		for _, o := range req.oids {
			vars = append(vars, v.get(o))
		}
	case pduGetNext:
		for _, o := range req.oids {
			p, _ := v.next(o)
			vars = append(vars, p)
		}
	case pduGetBulk:
		n := min(req.nonRepeaters, len(req.oids))
		for _, o := range req.oids[:n] {
			p, _ := v.next(o)
			vars = append(vars, p)
		}
		cur := append([]oid(nil), req.oids[n:]...)
		for r := 0; r < req.maxReps && len(cur) > 0 && len(vars) < maxBulkVarbinds; r++ {
			ended := 0
			for i, o := range cur {
				p, next := v.next(o)
				if p.Type == gosnmp.EndOfMibView {
					ended++
				}
				vars = append(vars, p)
				cur[i] = next
			}
			if ended == len(cur) {
				break
			}
		}
	}
	return gosnmp.NoError, 0, vars
}

// v3 processes an SNMPv3 message as RFC 3414 §3.2 orders the checks.
func (a *Agent) v3(raw []byte, m message) []byte {
	if !bytes.Equal(m.usm.engineID, a.engineID) {
		// Discovery (RFC 3414 §4) lands here with an empty engine ID.
		a.stats.refuse(reasonUnknownEngine)
		return a.report(m, nil, usmUnknownEngineIDs, a.plainRequestID(m))
	}
	u := a.set.Load().users[string(m.usm.user)]
	if u == nil {
		a.stats.refuse(reasonUnknownUser)
		return a.report(m, nil, usmUnknownUserNames, a.plainRequestID(m))
	}
	if m.flags&(flagAuth|flagPriv) != u.flags() {
		a.stats.refuse(reasonSecLevel)
		return a.report(m, nil, usmUnsupportedSecLevels, a.plainRequestID(m))
	}
	if !u.verify(raw, m.authSpan) {
		a.stats.refuse(reasonDigest)
		return a.report(m, nil, usmWrongDigests, 0)
	}
	boots, now := a.boots.Load(), int64(a.engineTime())
	if boots == maxBoots || m.usm.boots != int64(boots) || m.usm.time < now-timeWindow || m.usm.time > now+timeWindow {
		a.stats.refuse(reasonTimeWindow)
		return a.report(m, u, usmNotInTimeWindows, 0)
	}
	scoped := m.scoped
	if m.flags&flagPriv != 0 {
		ct, _, err := expect(scoped, tagOctets, "encryptedPDU")
		if err == nil {
			scoped, err = u.decrypt(m.usm, ct)
		}
		if err != nil {
			a.stats.refuse(reasonDecrypt)
			return a.report(m, nil, usmDecryptionErrors, 0)
		}
	}
	sc, err := parseScoped(scoped)
	if err != nil {
		// A wrong privacy key decrypts to garbage: a decryption error.
		if m.flags&flagPriv != 0 {
			a.stats.refuse(reasonDecrypt)
			return a.report(m, nil, usmDecryptionErrors, 0)
		}
		a.stats.refuse(reasonMalformed)
		return nil
	}
	req, err := parsePDU(sc.pdu)
	if err != nil {
		a.stats.refusePDU(err)
		return nil
	}
	a.stats.answered("v3")
	p := a.v3Packet(m, u, m.flags&(flagAuth|flagPriv))
	p.ContextName = string(sc.contextName)
	p.PDUType, p.RequestID = gosnmp.GetResponse, uint32(req.id)
	limit := maxResponse
	if m.maxSize >= 484 && m.maxSize < maxResponse {
		limit = int(m.maxSize)
	}
	return a.respond(p, req, limit)
}

// v3Packet is an SNMPv3 message from this engine to m's sender, secured
// with u's keys at level flags (u nil: noAuthNoPriv).
func (a *Agent) v3Packet(m message, u *usmUser, flags byte) *gosnmp.SnmpPacket {
	sp := &gosnmp.UsmSecurityParameters{AuthoritativeEngineID: string(a.engineID),
		AuthoritativeEngineBoots: a.boots.Load(), AuthoritativeEngineTime: a.engineTime(), UserName: string(m.usm.user),
		AuthenticationProtocol: gosnmp.NoAuth, PrivacyProtocol: gosnmp.NoPriv}
	if u != nil && flags&flagAuth != 0 {
		sp.AuthenticationProtocol, sp.SecretKey = u.auth, u.authKey
	}
	if u != nil && flags&flagPriv != 0 {
		// A fresh salt for every message under the key (RFC 3826 §3.1.1.1).
		sp.PrivacyProtocol, sp.PrivacyKey = u.priv, u.privKey[:16]
		sp.PrivacyParameters = binary.BigEndian.AppendUint64(nil, a.salt.Add(1))
	}
	return &gosnmp.SnmpPacket{Version: gosnmp.Version3, MsgFlags: gosnmp.SnmpV3MsgFlags(flags), SecurityModel: gosnmp.UserSecurityModel,
		SecurityParameters: sp, MsgID: uint32(m.msgID), MsgMaxSize: maxResponse, ContextEngineID: string(a.engineID)}
}

// plainRequestID is the request ID of an unencrypted scoped PDU, for a
// Report; 0 when it cannot be read.
func (a *Agent) plainRequestID(m message) int32 {
	if m.flags&flagPriv != 0 {
		return 0
	}
	sc, err := parseScoped(m.scoped)
	if err != nil {
		return 0
	}
	req, err := parsePDU(sc.pdu)
	if err != nil {
		return 0
	}
	return req.id
}

// report answers a failed check with a Report PDU carrying the usmStats
// counter (RFC 3414 §3.2), when the message asked for reports. Only
// notInTimeWindow goes authenticated, so the manager can trust the boots
// and time it carries.
func (a *Agent) report(m message, u *usmUser, stat uint32, reqID int32) []byte {
	if m.flags&flagReportable == 0 {
		return nil
	}
	var flags byte
	if u != nil {
		flags = flagAuth
	}
	p := a.v3Packet(m, u, flags)
	p.PDUType, p.RequestID = gosnmp.Report, uint32(reqID)
	p.Variables = []gosnmp.SnmpPDU{{Name: oidUsmStats.child(stat, 0).String(), Type: gosnmp.Counter32, Value: uint32(a.stats.usm(stat))}}
	b, err := p.MarshalMsg()
	if err != nil {
		a.log.Debug("snmp report not encoded", "err", err)
		return nil
	}
	return b
}

// limiter caps requests per source address and second. Its table is
// emptied each second and holds at most maxSources addresses; sources
// beyond them wait for the next second.
type limiter struct {
	per    int
	mu     sync.Mutex
	second int64
	counts map[netip.Addr]int
}

const maxSources = 1 << 16

func (l *limiter) setPer(per int) {
	l.mu.Lock()
	l.per = per
	l.mu.Unlock()
}

func (l *limiter) allow(ip netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := now.Unix(); s != l.second || l.counts == nil {
		l.second = s
		l.counts = make(map[netip.Addr]int)
	}
	c, ok := l.counts[ip]
	if (!ok && len(l.counts) >= maxSources) || c >= l.per {
		return false
	}
	l.counts[ip] = c + 1
	return true
}
