// Package ng implements rtpengine's "ng" control protocol so that SIP
// proxies that drive rtpengine (Kamailio's and OpenSIPS' rtpengine modules,
// the rtpengine-ng-client tool) can drive Portico's media relay instead.
//
// A request is one UDP datagram: a cookie, a space, and a bencoded
// dictionary (BEP 3 bencoding, package bencode) or a JSON object; the reply
// repeats the cookie. Commands: ping, offer, answer, delete, query, list.
// Offer and answer carry SDP (RFC 8866), rewritten so that each side sees
// only the relay's addresses, as rtpengine does for RTP/AVP and RTP/SAVP.
package ng

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

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
}

// Deps are the listener's collaborators.
type Deps struct {
	Relay  Relay
	Logger *slog.Logger
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
	if cfg.Listen != "" {
		if _, err := netip.ParseAddrPort(cfg.Listen); err != nil {
			return nil, fmt.Errorf("ng: listen: %q is not host:port: %w", cfg.Listen, err)
		}
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	return &Server{cfg: cfg, rel: deps.Relay, log: deps.Logger.With("component", "media-ng"),
		calls: map[string]*call{}, replies: map[string]cachedReply{}, started: time.Now()}, nil
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
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ng: read: %w", err)
		}
		if reply := s.Handle(buf[:n]); reply != nil {
			pc.WriteTo(reply, from)
		}
	}
}

// Handle answers one request datagram; nil means no answer (no cookie).
func (s *Server) Handle(pkt []byte) []byte {
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
	s.mu.Lock()
	if r, ok := s.replies[cookie]; ok {
		s.mu.Unlock()
		return r.b
	}
	s.mu.Unlock()
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

func (s *Server) offer(req map[string]any) map[string]any {
	callID, fromTag, body := str(req, "call-id"), str(req, "from-tag"), str(req, "sdp")
	if callID == "" || fromTag == "" || body == "" {
		return errorReply("offer needs call-id, from-tag and sdp")
	}
	doc, err := parseSDP(body)
	if err != nil {
		return errorReply(err.Error())
	}
	replaceOrigin := contains(strList(req, "replace"), "origin")
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
		ifaces := s.cfg.Interfaces
		if dir := strList(req, "direction"); len(dir) == 2 {
			ifaces = [2]string{dir[0], dir[1]}
		}
		id, infos, err := s.rel.Allocate(media.SessionConfig{Label: callID, Interfaces: ifaces, Streams: streams})
		if err != nil {
			return errorReply(err.Error())
		}
		s.calls[callID] = &call{id: id, fromTag: fromTag, streams: streams, created: time.Now()}
		return map[string]any{"result": "ok", "sdp": doc.rewrite(infos, streams, 1, replaceOrigin)}
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
	infos, err := s.rel.Update(c.id, streams)
	if err != nil {
		return errorReply(err.Error())
	}
	c.streams = streams
	return map[string]any{"result": "ok", "sdp": doc.rewrite(infos, streams, 1-leg, replaceOrigin)}
}

func (s *Server) answer(req map[string]any) map[string]any {
	callID, fromTag, toTag, body := str(req, "call-id"), str(req, "from-tag"), str(req, "to-tag"), str(req, "sdp")
	if callID == "" || body == "" {
		return errorReply("answer needs call-id, to-tag and sdp")
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
	if len(streams) > len(c.streams) {
		streams = streams[:len(c.streams)] // an answer cannot add streams
	}
	infos, err := s.rel.Update(c.id, streams)
	if err != nil {
		return errorReply(err.Error())
	}
	c.streams = streams
	return map[string]any{"result": "ok", "sdp": doc.rewrite(infos, streams, 1-leg, contains(strList(req, "replace"), "origin"))}
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
