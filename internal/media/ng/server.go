// Package ng implements rtpengine's "ng" control protocol so that SIP
// proxies that drive rtpengine (Kamailio's and OpenSIPS' rtpengine modules,
// the rtpengine-ng-client tool) can drive Portico's media relay instead.
//
// A request is one UDP datagram: a cookie, a space, and a bencoded
// dictionary (BEP 3 bencoding, package bencode) or a JSON object; the reply
// repeats the cookie. Commands: ping, offer, answer, delete, query, list.
// Offer and answer carry SDP (RFC 8866), rewritten so that each side sees
// only the relay's addresses, as rtpengine does for RTP/AVP and RTP/SAVP.
//
// The protocol has no authentication. The listener therefore refuses an
// address beyond loopback and private networks unless Config.Allow (the
// networks requests may come from, checked on every datagram) or
// Config.Secret (a shared secret every request carries) is set; requests
// failing either are dropped unanswered and counted.
//
// An offer or answer's "received-from" (the SIP source address Kamailio
// adds) lets media from that IP latch the sender's leg, as the signalled
// address does. The flags rtpengine's clients send are honoured with
// rtpengine's meaning: "asymmetric", "symmetric", "strict source",
// "trust address", "SIP-source-address", "replace-origin", and the keys
// "media address" and "ICE" (removal; ICE attributes are always removed).
package ng

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/media/ng/bencode"
)

// Relay is what the listener needs from the media relay (*media.Relay).
type Relay interface {
	Allocate(media.SessionConfig) (media.SessionID, []media.StreamInfo, error)
	Update(media.SessionID, []media.StreamConfig) ([]media.StreamInfo, error)
	Release(media.SessionID) (media.SessionStats, error)
	Session(media.SessionID) (media.SessionStats, error)
}

var _ Relay = (*media.Relay)(nil)

// Config configures the listener.
type Config struct {
	// Listen is the UDP host:port for Run. Required for Run; Serve takes a socket.
	Listen string
	// Interfaces are the relay interface names of the offerer's leg and the
	// answerer's leg. Default {"external", "external"}; a "direction" list
	// in a request overrides it per call, as with rtpengine.
	Interfaces [2]string
	// MaxCalls caps concurrent calls. Default 100,000.
	MaxCalls int
	// Allow lists the networks requests may come from; a datagram from
	// anywhere else is dropped unanswered and counted. Empty: any source,
	// which is refused (ErrExposed) when Listen, or the socket given to
	// Serve, is not a loopback or private address and Secret is empty.
	Allow []netip.Prefix
	// Secret, when set, must be in every request: the dictionary key
	// "secret", or a flag "secret=..." (Kamailio's rtpengine module passes
	// unknown flags through). Requests without it are dropped unanswered
	// and counted. It travels in clear: it keeps strangers out, not
	// eavesdroppers. Empty: none.
	Secret string
}

// Deps are the listener's collaborators.
type Deps struct {
	Relay  Relay
	Logger *slog.Logger
	// Registerer receives portico_media_ng_dropped_total. Nil: not exported.
	Registerer prometheus.Registerer
}

// Server answers ng requests.
type Server struct {
	cfg   Config
	rel   Relay
	log   *slog.Logger
	mu    sync.Mutex
	calls map[string]*call
	// replies caches answers by cookie so a retransmitted request gets the
	// same answer instead of a second allocation.
	replies map[string]cachedReply
	started time.Time

	notAllowed, badSecret prometheus.Counter
	lastDropLog           atomic.Int64 // unix ns: drops are logged at most every 10 s
}

type call struct {
	id      media.SessionID
	fromTag string
	toTag   string
	streams []media.StreamConfig
	created time.Time
}

type cachedReply struct {
	b  []byte
	at time.Time
}

// New validates cfg. It does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Relay == nil {
		return nil, errors.New("ng: Deps.Relay is required")
	}
	if cfg.Interfaces[0] == "" {
		cfg.Interfaces[0] = "external"
	}
	if cfg.Interfaces[1] == "" {
		cfg.Interfaces[1] = cfg.Interfaces[0]
	}
	if cfg.MaxCalls == 0 {
		cfg.MaxCalls = 100000
	}
	if cfg.MaxCalls < 0 {
		return nil, fmt.Errorf("ng: max_calls: %d is negative", cfg.MaxCalls)
	}
	for i, p := range cfg.Allow {
		if !p.IsValid() {
			return nil, fmt.Errorf("ng: allow[%d]: not a network", i)
		}
		cfg.Allow[i] = p.Masked()
	}
	if cfg.Listen != "" {
		ap, err := netip.ParseAddrPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("ng: listen: %q is not host:port: %w", cfg.Listen, err)
		}
		if err := cfg.checkExposure(ap.Addr()); err != nil {
			return nil, err
		}
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portico", Subsystem: "media_ng", Name: "dropped_total",
		Help: "ng control requests dropped unanswered, by reason: not_allowed (source outside media.ng_allow), bad_secret.",
	}, []string{"reason"})
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(dropped); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("ng: metrics: %w", err)
			}
			dropped = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return &Server{cfg: cfg, rel: deps.Relay, log: deps.Logger.With("component", "media-ng"),
		calls: map[string]*call{}, replies: map[string]cachedReply{}, started: time.Now(),
		notAllowed: dropped.WithLabelValues("not_allowed"), badSecret: dropped.WithLabelValues("bad_secret")}, nil
}

// checkExposure refuses a listen address beyond loopback and private
// networks (the wildcard included) when nothing restricts who may send.
func (c *Config) checkExposure(a netip.Addr) error {
	a = a.Unmap()
	if len(c.Allow) > 0 || c.Secret != "" || a.IsLoopback() || a.IsPrivate() {
		return nil
	}
	return fmt.Errorf("%w (listen %s)", ErrExposed, a)
}

func (s *Server) allowed(from netip.Addr) bool {
	if len(s.cfg.Allow) == 0 {
		return true
	}
	from = from.Unmap()
	for _, p := range s.cfg.Allow {
		if p.Contains(from) {
			return true
		}
	}
	return false
}

// authorized reports whether req carries the shared secret, if one is set.
func (s *Server) authorized(req map[string]any) bool {
	if s.cfg.Secret == "" {
		return true
	}
	want := []byte(s.cfg.Secret)
	if got := str(req, "secret"); got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1 {
		return true
	}
	for _, f := range strList(req, "flags") {
		if v, ok := strings.CutPrefix(f, "secret="); ok && subtle.ConstantTimeCompare([]byte(v), want) == 1 {
			return true
		}
	}
	return false
}

// drop counts a request dropped unanswered and logs one in ten seconds.
func (s *Server) drop(c prometheus.Counter, reason string, from netip.Addr) {
	c.Inc()
	now := time.Now().UnixNano()
	if last := s.lastDropLog.Load(); now-last >= int64(10*time.Second) && s.lastDropLog.CompareAndSwap(last, now) {
		s.log.Debug("ng request dropped", "reason", reason, "from", from)
	}
}

// Run listens on Config.Listen and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	pc, err := net.ListenPacket("udp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("ng: listen %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, pc)
}

// Serve answers requests arriving on pc until ctx is done; it closes pc.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer pc.Close()
	if la, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		if err := s.cfg.checkExposure(la.AddrPort().Addr()); err != nil {
			return err
		}
	}
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ng: read: %w", err)
		}
		var src netip.Addr
		if ua, ok := from.(*net.UDPAddr); ok {
			src = ua.AddrPort().Addr()
		}
		if !s.allowed(src) {
			s.drop(s.notAllowed, "not_allowed", src)
			continue
		}
		if reply := s.handle(buf[:n], src); reply != nil {
			pc.WriteTo(reply, from)
		}
	}
}

// Handle answers one request datagram; nil means no answer (no cookie, or
// no shared secret when one is required). Config.Allow is checked by Serve,
// which knows the sender.
func (s *Server) Handle(pkt []byte) []byte { return s.handle(pkt, netip.Addr{}) }

func (s *Server) handle(pkt []byte, from netip.Addr) []byte {
	sp := -1
	for i, c := range pkt {
		if c == ' ' {
			sp = i
			break
		}
	}
	if sp <= 0 {
		return nil
	}
	cookie, body := string(pkt[:sp]), pkt[sp+1:]
	isJSON := len(body) > 0 && body[0] == '{'
	var req map[string]any
	var perr error
	if isJSON {
		perr = json.Unmarshal(body, &req)
	} else {
		var v any
		v, perr = bencode.Parse(body)
		req, _ = v.(map[string]any)
		if perr == nil && req == nil {
			perr = errors.New("request is not a dictionary")
		}
	}
	// The secret is checked before the reply cache, so a stranger who
	// guesses a cookie gets nothing either.
	if !s.authorized(req) {
		s.drop(s.badSecret, "bad_secret", from)
		return nil
	}
	s.mu.Lock()
	if r, ok := s.replies[cookie]; ok {
		s.mu.Unlock()
		return r.b
	}
	s.mu.Unlock()
	var resp map[string]any
	if perr != nil {
		resp = errorReply("cannot decode request: " + perr.Error())
	} else {
		resp = s.dispatch(req)
	}
	var out []byte
	if isJSON {
		out, _ = json.Marshal(resp)
	} else {
		var err error
		if out, err = bencode.Append(nil, resp); err != nil {
			out, _ = bencode.Append(nil, errorReply(err.Error()))
		}
	}
	reply := append([]byte(cookie+" "), out...)
	s.mu.Lock()
	now := time.Now()
	if len(s.replies) > 10000 {
		for k, r := range s.replies {
			if now.Sub(r.at) > 30*time.Second {
				delete(s.replies, k)
			}
		}
	}
	s.replies[cookie] = cachedReply{b: reply, at: now}
	s.mu.Unlock()
	return reply
}

func errorReply(reason string) map[string]any {
	return map[string]any{"result": "error", "error-reason": reason}
}

func str(req map[string]any, key string) string {
	switch v := req[key].(type) {
	case string:
		return v
	case float64:
		return fmt.Sprint(v)
	case int64:
		return fmt.Sprint(v)
	}
	return ""
}

func strList(req map[string]any, key string) []string {
	l, _ := req[key].([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func (s *Server) dispatch(req map[string]any) map[string]any {
	switch cmd := str(req, "command"); cmd {
	case "ping":
		return map[string]any{"result": "pong"}
	case "offer":
		return s.offer(req)
	case "answer":
		return s.answer(req)
	case "delete":
		return s.delete(req)
	case "query":
		return s.query(req)
	case "list":
		return s.list(req)
	case "":
		return errorReply("no command")
	default:
		return errorReply("unknown command " + cmd)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var hyphenate = strings.NewReplacer(" ", "-", "_", "-")

// flag reports whether req's "flags" hold name, compared as rtpengine
// does: case-insensitively, with spaces and underscores read as hyphens.
func flag(req map[string]any, name string) bool {
	for _, f := range strList(req, "flags") {
		f = hyphenate.Replace(f)
		if strings.EqualFold(f, name) {
			return true
		}
	}
	return false
}

// applySender records on streams what req says about the sending leg's
// media, with rtpengine's meaning of each key and flag:
//   - "received-from" (the SIP source, a list of address family and
//     address) lets media from that IP latch the leg, unless the
//     "trust address" flag says to use the SDP's addresses alone;
//   - "SIP-source-address" (or "sip source address") sends media to the
//     received-from IP, on the SDP's port;
//   - "media address" replaces the SDP's address (and received-from) as
//     where the leg's media goes and comes from;
//   - "asymmetric" turns latching off for the leg; "symmetric" keeps it
//     on (the default); both together are refused;
//   - "strict source" makes the leg's first latched source final.
func applySender(req map[string]any, leg int, streams []media.StreamConfig) error {
	var from netip.Addr
	if rf := strList(req, "received-from"); len(rf) == 2 && !flag(req, "trust-address") {
		var err error
		if from, err = netip.ParseAddr(rf[1]); err != nil {
			return fmt.Errorf("received-from: %q is not an address", rf[1])
		}
		from = from.Unmap()
	}
	var to netip.Addr
	if ma := str(req, "media address"); ma != "" {
		a, err := netip.ParseAddr(ma)
		if err != nil {
			return fmt.Errorf("media address: %q is not an address", ma)
		}
		to, from = a.Unmap(), netip.Addr{}
	} else if from.IsValid() && (flag(req, "SIP-source-address") || flag(req, "sip-source-address")) {
		to = from
	}
	asym := flag(req, "asymmetric")
	if asym && flag(req, "symmetric") {
		return errors.New("flags symmetric and asymmetric both given")
	}
	strict := flag(req, "strict-source")
	for i := range streams {
		c := &streams[i]
		c.Source[leg], c.Asymmetric[leg], c.StrictSource[leg] = from, asym, strict
		if to.IsValid() && c.Remote[leg].IsValid() {
			c.Remote[leg] = netip.AddrPortFrom(to, c.Remote[leg].Port())
			if c.RemoteRTCP[leg].IsValid() {
				c.RemoteRTCP[leg] = netip.AddrPortFrom(to, c.RemoteRTCP[leg].Port())
			}
		}
	}
	return nil
}

// checkICE refuses an "ICE" option asking the relay to take part in ICE
// ("force", "force-relay"): the relay removes ICE attributes from every
// SDP it rewrites, which is what "remove" asks for.
func checkICE(req map[string]any) error {
	switch v := strings.ToLower(hyphenate.Replace(str(req, "ICE"))); v {
	case "force", "force-relay":
		return fmt.Errorf("ICE=%s is not supported: the relay removes ICE attributes", v)
	}
	return nil
}

// replaceOrigin reports whether the o= line gets the relay's address: a
// "replace" list holding "origin", or the "replace-origin" flag.
func replaceOrigin(req map[string]any) bool {
	return contains(strList(req, "replace"), "origin") || flag(req, "replace-origin")
}

func (s *Server) offer(req map[string]any) map[string]any {
	callID, fromTag, body := str(req, "call-id"), str(req, "from-tag"), str(req, "sdp")
	if callID == "" || fromTag == "" || body == "" {
		return errorReply("offer needs call-id, from-tag and sdp")
	}
	if err := checkICE(req); err != nil {
		return errorReply(err.Error())
	}
	doc, err := parseSDP(body)
	if err != nil {
		return errorReply(err.Error())
	}
	origin := replaceOrigin(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[callID]
	if !ok {
		if len(s.calls) >= s.cfg.MaxCalls {
			return errorReply("too many calls")
		}
		streams, err := doc.streams(0, nil)
		if err != nil {
			return errorReply(err.Error())
		}
		if err := applySender(req, 0, streams); err != nil {
			return errorReply(err.Error())
		}
		ifaces := s.cfg.Interfaces
		if dir := strList(req, "direction"); len(dir) == 2 {
			ifaces = [2]string{dir[0], dir[1]}
		}
		id, infos, err := s.rel.Allocate(media.SessionConfig{Label: callID, Interfaces: ifaces, Streams: streams})
		if err != nil {
			return errorReply(err.Error())
		}
		s.calls[callID] = &call{id: id, fromTag: fromTag, streams: streams, created: time.Now()}
		return map[string]any{"result": "ok", "sdp": doc.rewrite(infos, streams, 1, origin)}
	}
	// A re-offer (re-INVITE) from either side.
	leg := 0
	if c.toTag != "" && fromTag == c.toTag {
		leg = 1
	}
	streams, err := doc.streams(leg, c.streams)
	if err != nil {
		return errorReply(err.Error())
	}
	if err := applySender(req, leg, streams); err != nil {
		return errorReply(err.Error())
	}
	infos, err := s.rel.Update(c.id, streams)
	if err != nil {
		return errorReply(err.Error())
	}
	c.streams = streams
	return map[string]any{"result": "ok", "sdp": doc.rewrite(infos, streams, 1-leg, origin)}
}

func (s *Server) answer(req map[string]any) map[string]any {
	callID, fromTag, toTag, body := str(req, "call-id"), str(req, "from-tag"), str(req, "to-tag"), str(req, "sdp")
	if callID == "" || body == "" {
		return errorReply("answer needs call-id, to-tag and sdp")
	}
	if err := checkICE(req); err != nil {
		return errorReply(err.Error())
	}
	doc, err := parseSDP(body)
	if err != nil {
		return errorReply(err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[callID]
	if !ok {
		return errorReply("Unknown call-id")
	}
	// The answerer is the leg that did not send the offer.
	leg := 1
	if c.toTag != "" && fromTag == c.toTag {
		leg = 0
	} else if c.toTag == "" {
		c.toTag = toTag
	}
	streams, err := doc.streams(leg, c.streams)
	if err != nil {
		return errorReply(err.Error())
	}
	if err := applySender(req, leg, streams); err != nil {
		return errorReply(err.Error())
	}
	if len(streams) > len(c.streams) {
		streams = streams[:len(c.streams)] // an answer cannot add streams
	}
	infos, err := s.rel.Update(c.id, streams)
	if err != nil {
		return errorReply(err.Error())
	}
	c.streams = streams
	return map[string]any{"result": "ok", "sdp": doc.rewrite(infos, streams, 1-leg, replaceOrigin(req))}
}

func (s *Server) delete(req map[string]any) map[string]any {
	callID := str(req, "call-id")
	s.mu.Lock()
	c, ok := s.calls[callID]
	delete(s.calls, callID)
	s.mu.Unlock()
	if !ok {
		return errorReply("Call-ID not found or tags didn't match")
	}
	st, err := s.rel.Release(c.id)
	if err != nil {
		return errorReply(err.Error())
	}
	resp := statsReply(c, st)
	resp["result"] = "ok"
	return resp
}

func (s *Server) query(req map[string]any) map[string]any {
	callID := str(req, "call-id")
	s.mu.Lock()
	c, ok := s.calls[callID]
	s.mu.Unlock()
	if !ok {
		return errorReply("Unknown call-id")
	}
	st, err := s.rel.Session(c.id)
	if err != nil {
		return errorReply(err.Error())
	}
	resp := statsReply(c, st)
	resp["result"] = "ok"
	return resp
}

func (s *Server) list(req map[string]any) map[string]any {
	limit := 32
	switch v := req["limit"].(type) {
	case int64:
		limit = int(v)
	case float64:
		limit = int(v)
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.calls))
	for id := range s.calls {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	sort.Strings(ids)
	if limit >= 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	l := make([]any, len(ids))
	for i, id := range ids {
		l[i] = id
	}
	return map[string]any{"result": "ok", "calls": l}
}

// statsReply shapes stats like rtpengine's query answer: created, totals,
// and per-tag media with packets, bytes and RTCP-derived figures.
func statsReply(c *call, st media.SessionStats) map[string]any {
	var pkts, bytes, drops uint64
	tags := map[string]any{}
	legMedia := [2][]any{}
	for _, ss := range st.Streams {
		for leg, l := range ss.Legs {
			pkts += l.Packets
			bytes += l.Bytes
			drops += l.Dropped
			legMedia[leg] = append(legMedia[leg], map[string]any{
				"index":         int64(ss.Index + 1),
				"type":          string(ss.Kind),
				"local address": ss.Local[leg].String(),
				"peer address":  l.Peer.String(),
				"latched":       l.Latched,
				"packets":       l.Packets,
				"bytes":         l.Bytes,
				"dropped":       l.Dropped,
				"lost":          l.Lost,
				"jitter ms":     fmt.Sprintf("%.2f", l.JitterMs),
				"rtt ms":        fmt.Sprintf("%.2f", l.RTTMs),
				"last packet":   l.LastPacket.Unix(),
			})
		}
	}
	for leg, tag := range []string{c.fromTag, c.toTag} {
		if tag == "" {
			tag = fmt.Sprintf("leg%d", leg)
		}
		tags[tag] = map[string]any{"tag": tag, "medias": legMedia[leg]}
	}
	return map[string]any{
		"created": c.created.Unix(),
		"totals":  map[string]any{"RTP": map[string]any{"packets": pkts, "bytes": bytes, "errors": drops}},
		"tags":    tags,
	}
}
